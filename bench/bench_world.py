"""How fast the synthetic world is made: scenes/s, training examples/s per stream, mini world wall time.

    python bench/bench_world.py [--n 300] [--skip-world] [--json]

Single process, this machine. "Generation is never the bottleneck of training" means these rates
must exceed the reference model's training rate (examples/s of its training loop); the streams
shard over data-loader workers with ``start``/``step`` when one process is not enough.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from itertools import islice

from molmo_eval.reference_model.world import training
from molmo_eval.reference_model.world.rng import train_scene_id
from molmo_eval.reference_model.world.scene import make_scene
from molmo_eval.reference_model.world.world import write_world

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness does: idle OpenMP threads sleep


def rate(n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="scenes / examples per measurement")
    ap.add_argument("--skip-world", action="store_true", help="do not time the mini world")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.n
    out = {"scenes_per_s": rate(n, lambda: [make_scene(train_scene_id(0, "bench", i)) for i in range(n)])}
    for name, stream in training.STREAMS.items():
        out[f"{name}_examples_per_s"] = rate(n, lambda s=stream: list(islice(s(seed=11), n)))
    out["mixture_examples_per_s"] = rate(n, lambda: list(islice(training.mixture_stream(seed=11), n)))
    if not args.skip_world:
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            info = write_world(d, "mini", 0)
            out["mini_world_seconds"] = time.perf_counter() - t0
            out["mini_world_images"] = sum(b["digests"]["images"] for b in info["benchmarks"].values())
            out["mini_world_per_benchmark_s"] = {k: b["seconds"] for k, b in info["benchmarks"].items()}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for k, v in out.items():
        print(f"{k:28s} {v if isinstance(v, dict) else f'{v:,.1f}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

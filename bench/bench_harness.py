"""Harness overhead and cache benchmarks (issue 2). Not part of the test suite.

    python bench/bench_harness.py [--n 10000] [--model-ms 10]

1. Overhead: a scripted model that answers instantly over N toy samples; everything measured is
   harness (image read + digest, batching, prompt, cache lookup and write, parse, score,
   bootstrap CIs, records). Target: <= 1 ms per sample.
2. Re-run from cache: the same N samples with a model that takes --model-ms per sample, run once,
   then again from the cache (zero model calls). Target: re-run <= 5% of the first run.
3. `molmo-eval --help` and `molmo-eval tasks` wall time in fresh processes. Target: well under 1 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from toy import ToyTask, make_toy_data, oracle_text  # noqa: E402

from molmo_eval.core import registry  # noqa: E402
from molmo_eval.core.config import build  # noqa: E402
from molmo_eval.models.scripted import ScriptedModel  # noqa: E402
from molmo_eval.run.runner import run  # noqa: E402

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness does: idle OpenMP threads sleep


def timed_run(cfg, model) -> tuple[float, object]:
    t = time.perf_counter()
    out = run(cfg, model=model, show_progress=False)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--model-ms", type=float, default=10.0, help="per-sample model latency for the cache test")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    registry.register_task("toy", ToyTask)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        root = make_toy_data(tmp / "data", n=args.n, splits=("a",))
        print(f"wrote {args.n} toy samples in {time.perf_counter() - t:.1f}s")
        answers = {f"toy/a/{i}": oracle_text(f"toy/a/{i}", root) for i in range(args.n)}

        def cfg(name: str):
            return build("toy", model="scripted", data_root=root, output_path=tmp / name, cache_dir=tmp / f"c-{name}",
                         batch_size=args.batch_size)

        instant = ScriptedModel(fn=lambda r: answers[r.uid], fingerprint="instant")
        secs, out = timed_run(cfg("overhead"), instant)
        print(f"[overhead] {args.n} samples in {secs:.2f}s = {1000 * secs / args.n:.3f} ms/sample "
              f"(everything but the model; bootstrap 1000 resamples; target <= 1 ms)")
        print(f"           stage timings: { {k: round(v, 2) for k, v in out.record.timings.items()} }")

        delay = args.model_ms / 1000 * args.batch_size
        slow = ScriptedModel(fn=lambda r: answers[r.uid], fingerprint="slow", delay=delay)
        first, _ = timed_run(cfg("cached"), slow)
        again, out2 = timed_run(cfg("cached"), ScriptedModel(fn=lambda r: answers[r.uid], fingerprint="slow",
                                                             delay=delay))
        assert out2.record.counts["model_calls"] == 0
        print(f"[cache] first run {first:.2f}s (model {args.model_ms} ms/sample), re-run {again:.2f}s "
              f"with 0 model calls = {100 * again / first:.1f}% of the first (target <= 5%)")

    for argv in (["--help"], ["tasks"]):
        best = min(_wall([sys.executable, "-m", "molmo_eval", *argv]) for _ in range(3))
        print(f"[startup] molmo-eval {' '.join(argv)}: {best:.3f}s (best of 3)")


def _wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, check=True)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()

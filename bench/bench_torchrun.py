"""Data-parallel throughput under torchrun (issues 9, 16): N ranks against the default single process.

    python bench/bench_torchrun.py [--tasks vqav2,gqa,...] [--ranks 2] [--model reference] [--repeats 3]

Runs the same evaluation, with the response cache off, as

- the default single process (``molmo-eval --tasks ...``: the reference model takes 2 torch threads,
  or $OMP_NUM_THREADS) - the anchor a user compares with;
- a single process with one torch thread (the like-for-like of one rank);
- ``torchrun --nproc-per-node N`` with one thread per rank;

interleaved, ``--repeats`` times, keeping each one's best. Prints, per way, the wall time of the whole
command (start-up, data, model load, evaluation, writing) and the evaluation alone (the records' task
times), the speed-ups of torchrun over both single-process ways, and checks that every record has
identical metrics and per-sample scores. Goal (issue 16): >= 1.6x wall against the default single
process on the 2-core machine, identical metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness does: idle threads sleep
ALL = "vqav2,gqa,textvqa,refcoco,pointqa,mmbench,pope"


def run(cmd: list[str], out: Path, threads: str | None) -> tuple[float, float, dict]:
    """Wall seconds, evaluation seconds (the record's task times) and the record."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    t = time.perf_counter()
    subprocess.run(cmd + ["--output-path", str(out)], check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    rec = json.loads((out / "results.json").read_text())
    return wall, sum(t["seconds"] for t in rec["tasks"].values()), rec


def comparable(run_dir: Path) -> tuple[list, dict]:
    lines = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    scores = [(ln["uid"], ln["scores"], ln["output"]) for ln in lines]
    rec = json.loads((run_dir / "results.json").read_text())
    return scores, {t: v["metrics"] for t, v in rec["tasks"].items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=ALL)
    ap.add_argument("--model", default="reference")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-speedup", type=float, default=1.6)
    args = ap.parse_args()
    common = ["--tasks", args.tasks, "--model", args.model, "--no-cache", "--bootstrap", "0",
              "--batch-size", str(args.batch_size)] + (["--limit", str(args.limit)] if args.limit else [])
    single = [sys.executable, "-m", "molmo_eval", *common]
    ways = {"default single process": (single, None), "1 process x 1 thread": (single, "1"),
            f"torchrun {args.ranks} ranks x 1 thread": ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                         "--nproc-per-node", str(args.ranks), "-m", "molmo_eval",
                                                         *common], "1")}
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; best of {args.repeats}")
    best: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        for r in range(args.repeats):
            for k, (name, (cmd, threads)) in enumerate(ways.items()):
                wall, ev, rec = run(cmd, tmp / f"{k}-{r}", threads)
                b = best.get(name, (float("inf"), float("inf")))
                best[name] = (min(b[0], wall), min(b[1], ev))
        n = rec["counts"]["samples"]
        same = all(comparable(tmp / f"{k}-{r}") == comparable(tmp / "0-0")
                   for k in range(len(ways)) for r in range(args.repeats))
    print(f"{n} samples of {args.tasks}")
    for name, (wall, ev) in best.items():
        print(f"  {name:<28} {wall:6.1f} s wall, {ev:6.1f} s evaluating ({n / ev:6.1f} samples/s)")
    names = list(best)
    tr, default, one = best[names[2]], best[names[0]], best[names[1]]
    speedup = default[0] / tr[0]
    print(f"torchrun vs the default single process: {speedup:.2f}x wall, {default[1] / tr[1]:.2f}x evaluating "
          f"(goal >= {args.min_speedup}x wall); vs 1 process x 1 thread: {one[0] / tr[0]:.2f}x wall, "
          f"{one[1] / tr[1]:.2f}x evaluating; identical metrics and per-sample scores: {same}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    ok = same and speedup >= args.min_speedup
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

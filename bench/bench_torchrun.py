"""Data-parallel throughput under torchrun (issue 9): N ranks x 1 thread against 1 rank x 1 thread.

    python bench/bench_torchrun.py [--tasks vqav2,gqa,...] [--ranks 2] [--model reference] [--limit N]

Runs the same evaluation twice with the response cache off: once as a single process with one
torch thread, once under `torchrun --nproc-per-node N` with one thread per rank. Prints samples/s of
each (model load and data preparation excluded: the records' timings say how long the evaluation
itself took) and checks that the two records carry identical metrics and per-sample scores.
Target on the 2-core machine with the reference model on the mini splits: >= 1.6x, identical metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALL = "vqav2,gqa,textvqa,refcoco,pointqa,mmbench,pope"


def run(cmd: list[str], out: Path) -> tuple[float, float, dict]:
    """Wall seconds, CPU seconds (user + system, all processes of the command) and the record."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd + ["--output-path", str(out)], check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads((out / "results.json").read_text())


def comparable(run_dir: Path) -> tuple[list, dict]:
    lines = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    scores = [(ln["uid"], ln["scores"], ln["output"]) for ln in lines]
    rec = json.loads((run_dir / "results.json").read_text())
    return scores, {t: v["metrics"] for t, v in rec["tasks"].items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default=ALL)
    ap.add_argument("--model", default="reference")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    common = ["--tasks", args.tasks, "--model", args.model, "--no-cache", "--bootstrap", "0",
              "--batch-size", str(args.batch_size)]
    if args.limit:
        common += ["--limit", str(args.limit)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        w1, c1, r1 = run([sys.executable, "-m", "molmo_eval", *common], tmp / "one")
        wn, cn, rn = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                          str(args.ranks), "-m", "molmo_eval", *common], tmp / "many")
        n = r1["counts"]["samples"]
        e1 = sum(t["seconds"] for t in r1["tasks"].values())
        en = sum(t["seconds"] for t in rn["tasks"].values())
        same = comparable(tmp / "one") == comparable(tmp / "many")
        print(f"{n} samples of {args.tasks}")
        print(f"1 rank x 1 thread : {n / e1:7.1f} samples/s evaluating ({e1:.1f} s; {w1:.1f} s wall incl. start-up, "
              f"{c1:.1f} CPU s = {c1 / w1:.2f} cores busy)")
        print(f"{args.ranks} ranks x 1 thread: {n / en:7.1f} samples/s evaluating ({en:.1f} s; {wn:.1f} s wall incl. start-up, "
              f"{cn:.1f} CPU s = {cn / wn:.2f} cores busy)")
        print(f"speed-up {e1 / en:.2f}x evaluating, {w1 / wn:.2f}x wall; identical metrics and per-sample scores: {same}")
        return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())

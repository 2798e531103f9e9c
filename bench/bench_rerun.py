"""Benchmark: re-running a finished run costs a small fraction of the first run and loads no model.

    python bench/bench_rerun.py [--tasks refcoco,pointqa] [--model reference] [--repeats 3]

Per repeat, with a fresh response cache: the first run (``molmo-eval --tasks ... --cache-dir C``: the
model is loaded and every request goes to it) and the same command again (nothing changed, so the
run folder answers, `molmo_eval.run.reuse`; every output is in the cache too), each a whole process,
timed by wall clock. The anchor is the first run measured in the
same invocation; the ratio is the best re-run over the best first run. The re-run's record must
show 0 model calls and, for models that report it (the reference model), 0 model loads.

Goal (issue 16): the re-run <= 5% of the first run, 0 model loads, identical metrics. The first run's
length depends on the model (the bundled reference model; a larger one only lowers the ratio).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import as_installed, compiled  # noqa: E402

as_installed()  # time Python as installed: compiled once, never recompiled at each start-up
ROOT = Path(__file__).resolve().parent.parent



def timed(cmd: list[str]) -> tuple[float, dict]:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    out = Path(cmd[cmd.index("--output-path") + 1])
    return wall, json.loads((out / "results.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="refcoco,pointqa")
    ap.add_argument("--model", default="reference")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-ratio", type=float, default=0.05)
    args = ap.parse_args(argv)
    compiled(ROOT / "molmo_eval", ROOT / "tasks", ROOT / "reference_model")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    firsts, agains, ok = [], [], True
    with tempfile.TemporaryDirectory(prefix="molmo-eval-bench-rerun-") as tmp:
        for r in range(args.repeats):
            cache, out = Path(tmp) / f"cache{r}", Path(tmp) / f"run{r}"
            cmd = [sys.executable, "-m", "molmo_eval", "--tasks", args.tasks, "--model", args.model,
                   "--cache-dir", str(cache), "--output-path", str(out)]
            first, rec1 = timed(cmd)
            again, rec2 = timed(cmd)
            firsts.append(first)
            agains.append(again)
            c = rec2["counts"]
            same = {t: v["metrics"] for t, v in rec1["tasks"].items()} == {t: v["metrics"] for t, v in rec2["tasks"].items()}
            ok &= c["model_calls"] == 0 and c.get("model_loads", 0) == 0 and same
            print(f"repeat {r + 1}: first run {first:6.2f} s ({rec1['counts']['model_calls']} model calls), re-run "
                  f"{again:5.2f} s ({c['model_calls']} model calls, {c.get('model_loads', '?')} model loads, "
                  f"identical metrics: {same})", flush=True)
    ratio = min(agains) / min(firsts)
    ok &= ratio <= args.max_ratio
    print(f"best first run {min(firsts):.2f} s, best re-run {min(agains):.2f} s: re-run = {100 * ratio:.1f}% of the "
          f"first (goal <= {100 * args.max_ratio:g}%); load average at end: {os.getloadavg()[0]:.2f}")
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

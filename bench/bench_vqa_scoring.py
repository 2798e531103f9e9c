"""Benchmark: ``molmo-eval score`` on VQAv2 predictions, as a whole process, against the official scorer.

    python bench/bench_vqa_scoring.py --official DIR [--sizes 3000,30000,214000] [--repeats 5]

For each size, writes a VQAv2 split in the official file layout with realistic answer diversity
(`vqa_data.write_split`: tens of thousands of distinct answer strings and their case, punctuation,
article, plural and number-word variants; 214,000 questions is the size of VQAv2 val), then times,
``--repeats`` times and interleaved (official, ours, official, ours, ...), two whole processes:

- the anchor: the official ``vqa.py`` + ``vqaEval.py`` (``--official DIR`` or $MOLMO_EVAL_OFFICIAL_VQA
  names the folder that holds them; they are never part of this repository: fetch GT-Vision-Lab/VQA
  and port its two files to Python 3 — print statements, tabs — into a folder of your own), loading
  the annotation, question and result files and evaluating, as its ``vqaEvalDemo.py`` does;
- ``molmo-eval score --task vqav2 --data-root D --split val2014 --predictions results.json --json``.

Each process's wall time is its best (minimum) over the repeats; the ratio is the anchor's best over
ours, both measured in this run, so a busy machine slows both. Peak memory is each process's
maximum resident set. Before timing, one untimed run of each checks that the numbers are identical:
overall, per answer type and per question type from ``score --json``, and every question's accuracy
(molmo-eval's Python API) against the official ``evalQA`` (at 15 decimals, |difference| <= 1e-9).

Goals (issue 16): >= 3x at 3k (start-up bound), >= 10x at 30k, >= 20x at 214k, and at the largest
size a peak memory <= 50% of the anchor's. Exit code 1 when a goal is missed or a number differs.

Without the official files (no ``--official``, no $MOLMO_EVAL_OFFICIAL_VQA) the bench says how to point
at them, times molmo-eval's side alone (seconds and peak memory per size, no ratio) and exits 2: the
goals were not checked.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness does: idle threads sleep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import as_installed, compiled  # noqa: E402

as_installed()  # time Python as installed: compiled once, never recompiled at each start-up
ROOT = Path(__file__).resolve().parent.parent

from vqa_data import write_split  # noqa: E402

GOALS = {3_000: 3.0, 30_000: 10.0, 214_000: 20.0}
ANNOTATIONS, QUESTIONS = "v2_mscoco_val2014_annotations.json", "v2_OpenEnded_mscoco_val2014_questions.json"

# the official scorer as its demo runs it: load, evaluate; ``check`` also writes every number out
OFFICIAL = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from vqa import VQA
from vqaEval import VQAEval
d, out = sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None
vqa = VQA(d + "/ANNOTATIONS", d + "/QUESTIONS")
res = vqa.loadRes(d + "/results.json", d + "/QUESTIONS")
ev = VQAEval(vqa, res, n=15 if out else 2)
ev.evaluate()
print(ev.accuracy["overall"])
if out:
    json.dump({"accuracy": ev.accuracy, "per_question": dict((str(k), v) for k, v in ev.evalQA.items())},
              open(out, "w"))
'''.replace("ANNOTATIONS", ANNOTATIONS).replace("QUESTIONS", QUESTIONS)


# A small launcher times the process and reads its peak memory: a child forked from this (large)
# process would start its high-water mark at this process's size.
LAUNCHER = r"""
import json, os, subprocess, sys, time
t = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
print(json.dumps({"wall": time.perf_counter() - t, "mb": usage.ru_maxrss / 1024, "status": status}))
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak resident MB of one process."""
    out = json.loads(subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], check=True, capture_output=True,
                                    text=True).stdout)
    if out["status"] != 0:
        raise SystemExit(f"failed ({out['status']}): {' '.join(cmd)}")
    return out["wall"], out["mb"]


def ours_cmd(root: Path) -> list[str]:
    return [sys.executable, "-m", "molmo_eval", "score", "--task", "vqav2", "--data-root", str(root),
            "--split", "val2014", "--predictions", str(root / "vqav2" / "results.json"), "--json"]


def per_question(root: Path) -> dict[str, float]:
    """Every question's accuracy through molmo-eval's API (the scoring `score --predictions` runs)."""
    from molmo_eval.core import registry
    from molmo_eval.run.guard import score_samples
    from molmo_eval.run.loading import load_split

    task = registry.get_task("vqav2")
    samples, _ = load_split(task, root / "vqav2", "val2014")
    preds = task.read_predictions(root / "vqav2" / "results.json", samples)
    scored = score_samples(task, samples, [preds.get(s.uid) for s in samples], task.prediction_space())
    return {s.id: sc.score.values["accuracy"] for s, sc in zip(samples, scored)}


def check(root: Path, official: Path, python: str) -> tuple[float, int]:
    """Largest |difference| (as a fraction) between the official numbers and ours, and how many compared."""
    off_file = root / "official.json"
    subprocess.run([python, "-c", OFFICIAL, str(official), str(root / "vqav2"), str(off_file)], check=True,
                   stdout=subprocess.DEVNULL)
    off = json.loads(off_file.read_text())
    ours = json.loads(subprocess.run(ours_cmd(root), check=True, capture_output=True, text=True).stdout)
    acc = off["accuracy"]
    diffs = [abs(ours["metrics"]["accuracy"] - acc["overall"] / 100)]
    for group, key in (("answer_type", "perAnswerType"), ("question_type", "perQuestionType")):
        if set(ours["breakdowns"][group]) != set(acc[key]):
            return float("inf"), 0
        diffs += [abs(ours["breakdowns"][group][k] - v / 100) for k, v in acc[key].items()]
    mine = per_question(root)
    if set(mine) != set(off["per_question"]):
        return float("inf"), 0
    diffs += [abs(v - off["per_question"][k] / 100) for k, v in mine.items()]
    return max(diffs), len(diffs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, default=os.environ.get("MOLMO_EVAL_OFFICIAL_VQA"),
                   help="folder with the official vqa.py and vqaEval.py, ported to Python 3 "
                        "(or $MOLMO_EVAL_OFFICIAL_VQA)")
    p.add_argument("--official-python", default=sys.executable, help="interpreter for the official code")
    p.add_argument("--sizes", default="3000,30000,214000", help="questions per split, comma-separated")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each process per size (best kept)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    official = None if args.official is None else Path(args.official)
    if official is None or not (official / "vqaEval.py").is_file() or not (official / "vqa.py").is_file():
        print(f"no official scorer {'given' if official is None else f'in {official}'}: point --official DIR "
              "(or $MOLMO_EVAL_OFFICIAL_VQA) at a folder holding vqa.py and vqaEval.py of GT-Vision-Lab/VQA "
              "(PythonHelperTools/vqaTools/vqa.py, PythonEvaluationTools/vqaEvaluation/vqaEval.py), ported to "
              "Python 3; timing molmo-eval alone, no ratio")
        official = None
    sizes = [int(s) for s in args.sizes.split(",")]
    compiled(ROOT / "molmo_eval", ROOT / "tasks", *([] if official is None else [official]))
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"best of {args.repeats} interleaved runs per process")
    rows, ok = [], True
    with tempfile.TemporaryDirectory(prefix="molmo-eval-bench-vqa-") as tmp:
        for n in sizes:
            root = Path(tmp) / str(n)
            info = write_split(root / "vqav2", n, seed=args.seed)
            diversity = (f"n={n:>7} ({info['distinct_answers']} distinct answers, {info['distinct_predictions']} "
                         f"distinct predictions)")
            if official is None:
                best_ours, mem_ours = min(timed(ours_cmd(root)) for _ in range(args.repeats))
                print(f"{diversity}: molmo-eval {best_ours:6.2f} s, peak {mem_ours:5.0f} MB", flush=True)
                continue
            worst, compared = check(root, official, args.official_python)
            off_cmd = [args.official_python, "-c", OFFICIAL, str(official), str(root / "vqav2")]
            best_off = best_ours = float("inf")
            mem_off = mem_ours = 0.0
            for _ in range(args.repeats):
                w, m = timed(off_cmd)
                best_off, mem_off = min(best_off, w), max(mem_off, m)
                w, m = timed(ours_cmd(root))
                best_ours, mem_ours = min(best_ours, w), max(mem_ours, m)
            ratio = best_off / best_ours
            goal = GOALS.get(n)
            same = worst <= 1e-9
            ok &= same and (goal is None or ratio >= goal)
            rows.append((n, mem_off, mem_ours))
            print(f"{diversity}: official {best_off:7.2f} s, molmo-eval {best_ours:6.2f} s -> {ratio:5.1f}x"
                  f"{'' if goal is None else f' (goal >= {goal:g}x)'}; peak {mem_off:6.0f} MB vs {mem_ours:5.0f} MB "
                  f"({100 * mem_ours / mem_off:.0f}%); max |difference| {worst:.1g} over {compared} numbers",
                  flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if official is None:
        print("UNCHECKED: no anchor")
        return 2
    n, mem_off, mem_ours = rows[-1]
    if n >= 214_000:
        ok &= mem_ours <= 0.5 * mem_off
        print(f"peak memory at {n}: {100 * mem_ours / mem_off:.0f}% of the official scorer's (goal <= 50%)")
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

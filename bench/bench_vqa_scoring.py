"""Benchmark: scoring VQAv2 predictions with molmo-eval vs the official ``vqaEval.py``.

Writes a replicated VQAv2 split (official file layout: questions, annotations, results) of ``--n``
questions to a temporary folder, then

- molmo-eval: ``VQAv2.load`` + ``read_predictions`` (load), then parse + score + finalize +
  ``stats.summarize`` with the answer-type and question-type breakdowns (scoring; no bootstrap, which
  the official code does not do either; ``--bootstrap`` times it separately);
- official (when ``--official DIR`` or ``$MOLMO_EVAL_OFFICIAL_VQA`` names a folder holding the official
  ``vqa.py`` and ``vqaEval.py``, run by ``--official-python``): ``VQA`` + ``loadRes`` (load), then
  ``VQAEval.evaluate`` (scoring), in a subprocess; its numbers are compared with ours.

The official code is never part of this repository: fetch GT-Vision-Lab/VQA into a temporary folder
(Python 2 as published; for Python 3 change its ``print`` statements and expand its tabs).

    python bench/bench_vqa_scoring.py --n 200000 --official /tmp/official_vqa

Speed-ups are ratios of CPU time (``time.process_time``), which a busy shared machine disturbs less than
wall time; both are printed. Exit code 1 when the numbers differ (> 1e-9) or scoring is less than
``--min-speedup`` times faster.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# a realistic mix: yes/no, numbers and number words, articles, punctuation, contractions, case
ANSWERS = [
    "yes", "no", "Yes", "no.", "2", "two", "Two", "3", "three", "1", "one", "0", "none", "10", "ten", "1,000",
    "1000", "3.5", "white", "red", "blue", "black and white", "a dog", "the dog", "dog", "dogs", "cat",
    "tennis", "tennis racket", "tennis-racket", "frisbee", "pizza", "left", "right", "don't know", "dont know",
    "man's hat", "mans hat", "it's raining", "cant tell", "can't tell", "baseball", "skateboarding", "giraffe",
    "kitchen", "table", "wood", "grass", "sunny", "snow", "surfing", "train", "bus", "umbrella", "eating",
]
PREDICTION_EXTRA = ["Yes", "No", "TWO", "A dog.", "The Dog", "yes\n", " no ", "2 dogs", "3.50", "white."]
QUESTION_TYPES = ["what is the", "how many", "is the", "what color is the", "are there", "does the",
                  "what is the man", "is this", "what", "which"]
ANSWER_TYPES = {"yes/no": 0.38, "number": 0.12, "other": 0.5}
OFFICIAL_RUNNER = r'''
import json, sys, time
cpu = getattr(time, "process_time", None) or time.clock  # Python 2 has no process_time
sys.path.insert(0, sys.argv[1])
from vqa import VQA
from vqaEval import VQAEval
d = sys.argv[2]
t0, c0 = time.time(), cpu()
v = VQA(d + "/v2_mscoco_val2014_annotations.json", d + "/v2_OpenEnded_mscoco_val2014_questions.json")
r = v.loadRes(d + "/results.json", d + "/v2_OpenEnded_mscoco_val2014_questions.json")
t1, c1 = time.time(), cpu()
e = VQAEval(v, r, n=15)
e.evaluate()
t2, c2 = time.time(), cpu()
json.dump({"accuracy": e.accuracy, "load_s": t1 - t0, "score_s": t2 - t1, "load_cpu": c1 - c0, "score_cpu": c2 - c1,
           "per_question": dict((str(k), x) for k, x in e.evalQA.items())}, open(sys.argv[3], "w"))
'''


def write_split(folder: Path, n: int, base: int, seed: int) -> None:
    """``base`` distinct questions with varied answers, replicated to ``n`` under new question ids."""
    rng = random.Random(seed)
    protos = []
    for _ in range(base):
        r = rng.random()
        if r < 0.3:
            answers = [rng.choice(ANSWERS)] * 10
        elif r < 0.6:
            a, b = rng.sample(ANSWERS, 2)
            k = rng.randint(5, 9)
            answers = [a] * k + [b] * (10 - k)
        else:
            answers = [rng.choice(ANSWERS) for _ in range(10)]
        pred = rng.choice(answers) if rng.random() < 0.6 else rng.choice(ANSWERS + PREDICTION_EXTRA)
        atype = rng.choices(list(ANSWER_TYPES), weights=list(ANSWER_TYPES.values()))[0]
        protos.append((answers, pred, rng.choice(QUESTION_TYPES), atype))
    questions, annotations, results = [], [], []
    for i in range(n):
        answers, pred, qtype, atype = protos[i % base]
        qid, image_id = 1_000_000 + i, 1 + i // 3
        questions.append({"question_id": qid, "image_id": image_id, "question": "What is in the picture?"})
        annotations.append({
            "question_id": qid, "image_id": image_id, "question_type": qtype, "answer_type": atype,
            "multiple_choice_answer": answers[0],
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k, a in enumerate(answers)]})
        results.append({"question_id": qid, "answer": pred})
    meta = {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "val2014", "license": {}}
    (folder / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps({**meta, "questions": questions}))
    (folder / "v2_mscoco_val2014_annotations.json").write_text(json.dumps({**meta, "annotations": annotations}))
    (folder / "results.json").write_text(json.dumps(results))


def run_ours(folder: Path, n_boot: int) -> dict:
    from molmo_eval.core import registry
    from molmo_eval.core.task import ParseContext
    from molmo_eval.metrics import stats

    task = registry.get_task("vqav2")
    t0, c0 = time.perf_counter(), time.process_time()
    samples = task.load(folder, "val2014")
    preds = task.read_predictions(folder / "results.json", samples)
    t1, c1 = time.perf_counter(), time.process_time()
    ctx = ParseContext()
    scores = [task.score(s, task.parse(s, preds[s.uid], ctx)) for s in samples]
    scores = task.finalize(samples, scores)
    cols = stats.columns(samples, scores)
    overall, groups = stats.summarize(task.metrics(), cols, task.breakdowns, seed=0, label="vqav2", n_boot=0)
    t2, c2 = time.perf_counter(), time.process_time()
    out = {"load_s": t1 - t0, "score_s": t2 - t1, "load_cpu": c1 - c0, "score_cpu": c2 - c1,
           "overall": overall["accuracy"].value,
           "groups": {g: {k: v["accuracy"].value for k, v in keys.items()} for g, keys in groups.items()},
           "per_question": {s.id: sc.values["accuracy"] for s, sc in zip(samples, scores, strict=True)}}
    if n_boot:
        t3 = time.perf_counter()
        stats.summarize(task.metrics(), cols, task.breakdowns, seed=0, label="vqav2", n_boot=n_boot)
        out["bootstrap_s"] = time.perf_counter() - t3
    return out


def run_official(folder: Path, official: Path, python: str) -> dict:
    runner = folder / "official_runner.py"
    runner.write_text(OFFICIAL_RUNNER)
    out = folder / "official.json"
    subprocess.run([python, str(runner), str(official), str(folder), str(out)], check=True,
                   stdout=subprocess.DEVNULL, cwd=folder)
    return json.loads(out.read_text())


def _times(r: dict) -> str:
    return (f"load {r['load_s']:.2f}s wall / {r['load_cpu']:.2f}s CPU, "
            f"scoring {r['score_s']:.2f}s wall / {r['score_cpu']:.2f}s CPU")


def compare(ours: dict, off: dict) -> float:
    acc = off["accuracy"]
    diffs = [abs(ours["overall"] - acc["overall"] / 100)]
    for group, key in (("answer_type", "perAnswerType"), ("question_type", "perQuestionType")):
        assert set(ours["groups"][group]) == set(acc[key]), group
        diffs += [abs(ours["groups"][group][k] - v / 100) for k, v in acc[key].items()]
    diffs += [abs(v - off["per_question"][k] / 100) for k, v in ours["per_question"].items()]
    return max(diffs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200_000, help="questions (default 200000)")
    p.add_argument("--base", type=int, default=2_000, help="distinct questions before replication")
    p.add_argument("--official", type=Path, default=os.environ.get("MOLMO_EVAL_OFFICIAL_VQA"),
                   help="folder with the official vqa.py and vqaEval.py (or $MOLMO_EVAL_OFFICIAL_VQA)")
    p.add_argument("--official-python", default=sys.executable, help="interpreter for the official code")
    p.add_argument("--bootstrap", type=int, default=0, help="also time bootstrap CIs with this many resamples")
    p.add_argument("--min-speedup", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="molmo-eval-bench-vqa-") as tmp:
        folder = Path(tmp)
        write_split(folder, args.n, min(args.base, args.n), args.seed)
        ours = run_ours(folder, args.bootstrap)
        print(f"molmo-eval  n={args.n}: {_times(ours)}"
              + (f", bootstrap x{args.bootstrap} {ours['bootstrap_s']:.2f}s" if args.bootstrap else "")
              + f"; accuracy {ours['overall']:.6f}")
        if args.official is None or not (Path(args.official) / "vqaEval.py").is_file():
            print("official vqaEval.py not given (--official DIR or $MOLMO_EVAL_OFFICIAL_VQA): comparison skipped")
            return 0
        off = run_official(folder, Path(args.official), args.official_python)
    worst = compare(ours, off)
    speedup = off["score_cpu"] / ours["score_cpu"]
    wall = off["score_s"] / ours["score_s"]
    total = (off["load_cpu"] + off["score_cpu"]) / (ours["load_cpu"] + ours["score_cpu"])
    print(f"official    n={args.n}: {_times(off)}; accuracy {off['accuracy']['overall'] / 100:.6f}")
    print(f"scoring speed-up {speedup:.1f}x CPU time ({wall:.1f}x wall; load+scoring {total:.1f}x CPU); "
          f"max |difference| {worst:.2g} over "
          f"overall, {len(off['accuracy']['perAnswerType'])} answer types, "
          f"{len(off['accuracy']['perQuestionType'])} question types and {args.n} questions")
    ok = worst <= 1e-9 and speedup >= args.min_speedup
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

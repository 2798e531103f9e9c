"""Blind baselines on the synthetic world: how far the question text alone gets, per split.

    python bench/blind_baseline.py [--data-root DIR] [--fit-seed 1] [--json]

A "blind model" never looks at the image. For every task it answers with the most frequent answer of
its question's type, learned on another world (seed ``--fit-seed``, disjoint images; ``--fit-seed 0``
learns on the evaluated split itself, an optimistic bound):

- vqav2: type = the official VQA ``question_type``; textvqa, gqa, local/looktwice: the first three
  words of the question; pope: one type (answers "yes" or "no" throughout); mmbench: the most
  frequent answer letter of the category (the same letter for every circular copy);
- refcoco/+/g: the mean target centre of expressions with the same location word (left, right,
  top, bottom, middle or none), a point in pixels, which exploits exactly what RefCOCO+ bans;
- pointqa pointing: "How many" questions get the most frequent count, "Point to" questions the
  mean target centre.

Predictions go through the task plugins (parse, score, finalize, metrics) as pixel-space text, so
the numbers are the harness's own official-parity metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

from molmo_eval.core import registry
from molmo_eval.data.embedded import ensure_world

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness does: idle OpenMP threads sleep

TASKS = ("vqav2", "textvqa", "gqa", "pope", "mmbench", "refcoco", "refcoco+", "refcocog", "pointqa")
LOCATION = ("left", "right", "top", "bottom", "middle")


def first_words(text: str, n: int = 3) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower())[:n])


def gold_text(sample) -> str:
    t = sample.target
    if "answers" in t and not isinstance(t.get("answer"), str):
        return Counter(t["answers"]).most_common(1)[0][0]
    return str(t.get("answer", t.get("label", "")))


def text_key(task: str, sample) -> str:
    f = sample.prompt_fields
    if task == "vqav2":
        return str(sample.meta.get("question_type"))
    if task == "pope":
        return "all"
    if task == "mmbench":
        return str(sample.meta.get("category"))
    if task.startswith("refcoco"):
        words = set(re.findall(r"[a-z]+", f["expression"].lower()))
        return next((w for w in LOCATION if w in words or f"{w}most" in words), "none")
    if task == "pointqa" and "point" not in f:
        return "count" if f["question"].lower().startswith("how many") else "point"
    return first_words(f.get("question", ""))


def centre(sample) -> tuple[float, float]:
    """Normalized centre of the sample's target (box, or mean of its points)."""
    w, h = sample.image_size
    t = sample.target
    if t.get("box") is not None:
        x1, y1, x2, y2 = t["box"]
        return (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
    pts = t.get("points") or []
    if not pts:
        return 0.5, 0.5
    return sum(p[0] for p in pts) / len(pts) / w, sum(p[1] for p in pts) / len(pts) / h


def blind_table(task: str, fit: list, evals: list) -> dict[str, str]:
    """uid -> the blind model's output text for every evaluated sample."""
    spatial = task.startswith("refcoco")
    answers: dict[str, Counter] = defaultdict(Counter)
    centres: dict[str, list] = defaultdict(list)
    for s in fit:
        k = text_key(task, s)
        if spatial or k == "point":
            centres[k].append(centre(s))
        elif k == "count":
            answers[k][str(s.target.get("count", len(s.target.get("points") or [])))] += 1
        else:
            answers[k][gold_text(s)] += 1
    overall = Counter()
    for c in answers.values():
        overall.update(c)
    out = {}
    for s in evals:
        k = text_key(task, s)
        if spatial or k == "point":
            pts = centres.get(k) or [p for v in centres.values() for p in v] or [(0.5, 0.5)]
            w, h = s.image_size
            x = sum(p[0] for p in pts) / len(pts) * w
            y = sum(p[1] for p in pts) / len(pts) * h
            out[s.uid] = f"({x:.1f}, {y:.1f})"
        else:
            table = answers.get(k) or overall
            out[s.uid] = table.most_common(1)[0][0] if table else ""
    return out


def score(task, samples: list, texts: dict[str, str]) -> dict[str, float]:
    """The task's own parse, score, finalize and metrics over the blind outputs (no bootstrap)."""
    from molmo_eval.core.task import ParseContext
    from molmo_eval.core.types import CoordSpace, Generation
    from molmo_eval.metrics import stats

    scores = []
    for s in samples:
        ctx = ParseContext(space=CoordSpace.PIXELS, image_size=s.image_size)
        scores.append(task.score(s, task.parse(s, Generation(texts[s.uid]), ctx)))
    scores = task.finalize(samples, scores)
    values = stats.aggregate(task.metrics(), stats.columns(samples, scores), seed=0, n_boot=0)
    return {k: round(v.value, 4) for k, v in values.items()}


def run(data_root: Path, fit_root: Path) -> list[dict]:
    rows = []
    for name in TASKS:
        task = registry.get_task(name)
        for split in task.default_splits:
            evals = task.load(data_root / task.data_dir, split)
            fit = task.load(fit_root / task.data_dir, split)
            metrics = score(task, evals, blind_table(name, fit, evals))
            rows.append({"task": name, "split": split, "n": len(evals), "primary": task.primary_metric,
                         "value": metrics.get(task.primary_metric), "metrics": metrics})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=None, help="world to evaluate (default: embedded mini)")
    ap.add_argument("--fit-seed", type=int, default=1, help="world seed the blind model learns from (0: same)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data_root = args.data_root or ensure_world("mini", 0)
    fit_root = data_root if args.fit_seed == 0 else ensure_world("mini", args.fit_seed)
    rows = run(data_root, fit_root)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        return 0
    print(f"blind baseline: most frequent answer per question type, learned on {fit_root.name}")
    for r in rows:
        extra = ", ".join(f"{k} {v:.3f}" for k, v in r["metrics"].items() if k != r["primary"] and v is not None)
        print(f"{r['task']:9s} {r['split']:17s} n={r['n']:4d}  {r['primary']} {r['value']:.3f}   ({extra})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Metrics of a reference-model checkpoint on every mini split, as the model card's markdown table.

    python bench/reference_card.py [--checkpoint DIR] [--tasks vqav2,gqa,...] [--json] [--limit N]

Runs the harness (`molmo_eval.evaluate`) on the embedded mini world with bootstrap 95% CIs and
prints one row per task and split: the quality-bar metric first, then the others.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from molmo_eval import evaluate
from molmo_eval.models.reference import ReferenceModel

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness does: idle OpenMP threads sleep

TASKS = ("vqav2", "gqa", "textvqa", "refcoco", "refcoco+", "refcocog", "pointqa", "mmbench", "pope")
SHOWN = {
    "vqav2": ("accuracy",), "gqa": ("accuracy", "binary", "open", "consistency"), "textvqa": ("accuracy",),
    "refcoco": ("point_in_box", "point_in_mask"), "refcoco+": ("point_in_box", "point_in_mask"),
    "refcocog": ("point_in_box", "point_in_mask"),
    "pointqa": ("f1", "precision", "recall", "count_accuracy", "accuracy"),
    "mmbench": ("circular_accuracy", "vanilla_accuracy"), "pope": ("f1", "accuracy", "yes_ratio"),
}


def fmt(mv) -> str:
    if mv is None or mv.value != mv.value:
        return "—"
    ci = "" if mv.ci_low is None else f" [{100 * mv.ci_low:.1f}, {100 * mv.ci_high:.1f}]"
    return f"{100 * mv.value:.1f}{ci}"


def rows(record) -> list[dict]:
    out = []
    for name, tr in record.tasks.items():
        by_split = tr.breakdowns.get("split", {})
        splits = list(by_split) if len(tr.splits) > 1 else [tr.splits[0]]
        for split in splits:
            ms = by_split.get(split, tr.metrics) if len(tr.splits) > 1 else tr.metrics
            n = next((m.n for m in ms.values() if m.n), tr.n)
            out.append({"task": name, "split": split, "n": n,
                        "metrics": {k: fmt(ms.get(k)) for k in SHOWN.get(name, ()) if k in ms}})
        if len(tr.splits) > 1:
            out.append({"task": name, "split": "all", "n": tr.n,
                        "metrics": {k: fmt(tr.metrics.get(k)) for k in SHOWN.get(name, ()) if k in tr.metrics}})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="checkpoint folder (default: the bundled one)")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--limit", type=int)
    ap.add_argument("--output-path", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    model = ReferenceModel(checkpoint=args.checkpoint)
    t0 = time.perf_counter()
    rec = evaluate(args.tasks.split(","), model, limit=args.limit, use_cache=False, batch_size=64, overwrite=True,
                   output_path=args.output_path or "runs/reference-card")
    table = rows(rec)
    if args.json:
        print(json.dumps({"fingerprint": model.fingerprint, "seconds": time.perf_counter() - t0, "rows": table},
                         indent=1))
        return 0
    print(f"checkpoint fingerprint {model.fingerprint}; {time.perf_counter() - t0:.0f} s\n")
    print("| task | split | n | metrics (%, 95% bootstrap CI) |\n|---|---|---|---|")
    for r in table:
        ms = "; ".join(f"{k} {v}" for k, v in r["metrics"].items())
        print(f"| {r['task']} | {r['split']} | {r['n']} | {ms} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

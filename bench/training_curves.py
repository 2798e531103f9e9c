"""Learning curves of a `molmo-eval train` run: one training_log.jsonl and one PNG.

    python bench/training_curves.py RUN_DIR [--log OUT.jsonl] [--png OUT.png] [--compare OTHER.jsonl ...]

Reads ``RUN_DIR/stage<k>_<name>/training_log.jsonl`` (one line per logged step, as the trainer
writes it), concatenates the stages in order with ``stage`` / ``stage_name`` keys (the bundled
checkpoint's training_log.jsonl) and plots, one panel per stage, the training loss against the
step, plus stage 0's held-out-free patch accuracies when present. ``--compare`` overlays other
concatenated logs (e.g. an earlier checkpoint's) at the same stage and step.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def concat(run: Path) -> list[dict]:
    rows = []
    stages = sorted((d for d in run.iterdir() if re.fullmatch(r"stage\d+_\w+", d.name)),
                    key=lambda d: int(d.name[5:].split("_")[0]))
    for d in stages:
        log = d / "training_log.jsonl"
        if not log.is_file():
            continue
        number, name = d.name[5:].split("_", 1)
        for line in log.read_text().splitlines():
            if line.strip():
                rows.append({"stage": int(number), "stage_name": name, **json.loads(line)})
    if not rows:
        raise SystemExit(f"{run}: no stage<k>_<name>/training_log.jsonl found")
    return rows


def read(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def plot(rows: list[dict], png: Path, title: str, others: dict[str, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = sorted({r["stage"] for r in rows})
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.4), squeeze=False)
    for ax, k in zip(axes[0], stages):
        mine = [r for r in rows if r["stage"] == k]
        ax.plot([r["step"] for r in mine], [r["loss"] for r in mine], label=f"{title} loss", color="C0")
        for j, (name, other) in enumerate(others.items()):
            theirs = [r for r in other if r.get("stage") == k]
            if theirs:
                ax.plot([r["step"] for r in theirs], [r["loss"] for r in theirs], label=f"{name} loss",
                        color=f"C{j + 2}", alpha=0.7)
        accs = [key for key in mine[-1] if key.endswith("_accuracy")]
        if accs:
            twin = ax.twinx()
            for j, key in enumerate(accs):
                pts = [(r["step"], r[key]) for r in mine if key in r]
                twin.plot([p[0] for p in pts], [p[1] for p in pts], ls="--", color=f"C{j + 5}",
                          label=key.replace("_accuracy", " acc. (train batch)"))
            twin.set_ylim(0, 1)
            twin.set_ylabel("patch accuracy")
            twin.legend(loc="center right", fontsize=7)
        ax.set_title(f"stage {k}: {mine[0]['stage_name']}")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--log", type=Path, help="write the concatenated log here")
    ap.add_argument("--png", type=Path, help="write the curves here")
    ap.add_argument("--title", default="this run")
    ap.add_argument("--compare", nargs="*", default=[], metavar="NAME=LOG")
    a = ap.parse_args()
    rows = concat(a.run)
    if a.log:
        a.log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if a.png:
        others = {}
        for item in a.compare:
            name, path = item.split("=", 1)
            others[name] = read(Path(path))
        plot(rows, a.png, a.title, others)
    print(f"{len(rows)} log lines over stages {sorted({r['stage'] for r in rows})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

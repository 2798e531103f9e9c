"""The pilot curves of the v3 issue as one PNG (docs/pilots/pilots.png).

    python bench/pilots/plot.py

Panels: (1) lever 1/2, vision pilots: held-out category accuracy of object patches per step;
(2) lever 4, focused "is there a X?" diagnostics: training loss per step (the prior is ~0.35);
(3) lever 3/4, LM pilots L1 (no tags) and L2 (tags + grounding bias): stage-2 loss per step;
(4) pointing, stage-3 pilots from F1's stage-2 checkpoint: training loss per step (mean of 5 logs),
held-out single-object pointing at the end in the legend.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DOCS = Path(__file__).resolve().parents[2] / "docs" / "pilots"


# stage-3 pilots: log name, legend (held-out single-object pointing at step 300)
STAGE3 = (("S3-vision-trainable", "S3: encoder trainable (single 1.4%)"),
          ("S4-tags-out-of-values", "S4: tags out of values (2.8%)"),
          ("P1-pointer", "P1: pointer (37.5%)"),
          ("P2-pointer-order", "P2: pointer + order (30.6%)"),
          ("P3-pointer-lr2x", "P3: P2 at 2x lr (29.2%)"))


def rows(path: Path) -> list[dict]:
    return [r for r in (json.loads(x) for x in path.read_text().splitlines() if x.strip()) if "step" in r]


def main() -> None:
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    ax = axes[0]
    for p in sorted(DOCS.glob("vision-*.jsonl")):
        rs = [r for r in rows(p) if "heldout_category" in r]
        ax.plot([r["step"] for r in rs], [r["heldout_category"] for r in rs], marker="o", ms=3,
                label=p.stem.removeprefix("vision-"))
    ax.axhline(0.9, color="grey", ls=":", lw=1)
    ax.set(title="stage 0 pilots: held-out category accuracy", xlabel="step", ylabel="object patches", ylim=(0, 1))
    ax.legend(fontsize=7)
    ax = axes[1]
    names = {"diag-diag-exist-5e-4": "no tags", "diag-diag2-exist-tagger": "tags, no bias",
             "diag-diag3-exist-text": "text only (objects in prompt)", "diag-diag2-exist-ctx": "tags + grounding bias"}
    for stem, label in names.items():
        rs = rows(DOCS / f"{stem}.jsonl")
        ax.plot([r["step"] for r in rs], [r["loss"] for r in rs], marker="o", ms=3, label=label)
    ax.set(title='"is there a X?" diagnostics', xlabel="step", ylabel="training loss", yscale="log")
    ax.legend(fontsize=7)
    ax = axes[2]
    for name, label in (("L1-p4-pool4k", "L1: no tags"), ("L2-p4-ground", "L2: tags + grounding")):
        rs = rows(DOCS / f"lm-{name}-stage2_instruct.jsonl")
        ax.plot([r["step"] for r in rs], [r["loss"] for r in rs], label=label)
    ax.set(title="stage-2 pilots (same encoder, data, seed)", xlabel="step", ylabel="training loss", ylim=(0.4, 1.5))
    ax.legend(fontsize=7)
    ax = axes[3]
    for name, label in STAGE3:
        path = DOCS / f"lm-{name}-stage3_pointing.jsonl"
        if not path.is_file():
            continue
        rs = rows(path)
        loss = [r["loss"] for r in rs]
        smooth = [sum(loss[max(0, i - 4):i + 1]) / len(loss[max(0, i - 4):i + 1]) for i in range(len(loss))]
        ax.plot([r["step"] for r in rs], smooth, label=label)
    ax.set(title="stage-3 pilots (from F1's stage 2)", xlabel="step", ylabel="training loss (mean of 5)",
           ylim=(0.8, 2.0))
    ax.legend(fontsize=7)
    for a in axes:
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(DOCS / "pilots.png", dpi=100)


if __name__ == "__main__":
    main()

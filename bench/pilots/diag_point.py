"""Where does a checkpoint point? Held-out single-object point examples (an unseen world seed): the
error of the first point in bins per axis, and a dozen answers beside their targets.

    python bench/pilots/diag_point.py CHECKPOINT_DIR [THREADS]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

from molmo_eval.reference_model import checkpoint
from molmo_eval.reference_model.evaluate import _BIN, world_groups
from molmo_eval.reference_model.generate import generate
from molmo_eval.reference_model.processing import image_tensor, prompt_ids


def bins(text: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in _BIN.findall(text)]


def main() -> int:
    torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    model, tok, _ = checkpoint.load(Path(sys.argv[1]))
    items = [(g.image, p, a) for g in world_groups("point", 60) for i, (p, a) in enumerate(g.pairs)
             if g.kind(i) == "point/single"][:120]
    answers = []
    with torch.no_grad():
        for i in range(0, len(items), 32):
            chunk = items[i:i + 32]
            px = image_tensor([c[0] for c in chunk], model.cfg.image_size)
            outs = generate(model, px, [prompt_ids(tok, c[1]) for c in chunk], 48)
            answers += [(c[1], c[2], tok.decode(ids)) for c, ids in zip(chunk, outs)]
    dx, dy = [], []
    for _, gold, pred in answers:
        g, p = bins(gold), bins(pred)
        if g and p:
            dx.append(abs(p[0][0] - g[0][0]))
            dy.append(abs(p[0][1] - g[0][1]))
    print(f"{len(answers)} examples, {len(dx)} answered with a point")
    for name, d in (("x", dx), ("y", dy)):
        print(f"{name}: median error {statistics.median(d)} bins; within 5: {sum(e <= 5 for e in d) / len(d):.2f}, "
              f"within 12: {sum(e <= 12 for e in d) / len(d):.2f}")
    both = sum(a <= 5 and b <= 5 for a, b in zip(dx, dy)) / len(dx)
    print(f"both within 5 bins: {both:.2f}")
    for prompt, gold, pred in answers[:12]:
        print(f"{prompt!r} | {gold} | {pred}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Held-out checks during training: answer the world's examples from an unseen seed.

Not the benchmarks (those run through the harness): a quick, model-side signal per example kind,
logged at the end of each stage. Text answers count when they match exactly; point answers when
every target has a predicted point within ``tol`` bins (one-to-one, greedy) and no point is extra.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Sequence

import torch

from .data import Group, WorldSource
from .generate import generate
from .model import MolmoModel
from .processing import image_tensor, prompt_ids
from .tokenizer import Tokenizer

_BIN = re.compile(r"<x_(\d+)> <y_(\d+)>")


def points_match(pred: str, gold: str, tol: int = 5) -> bool:
    """Every gold bin pair has its own predicted pair within ``tol`` bins on both axes, none extra."""
    p = [(int(a), int(b)) for a, b in _BIN.findall(pred)]
    g = [(int(a), int(b)) for a, b in _BIN.findall(gold)]
    if len(p) != len(g):
        return False
    left = list(p)
    for gx, gy in g:
        hit = next((q for q in left if abs(q[0] - gx) <= tol and abs(q[1] - gy) <= tol), None)
        if hit is None:
            return False
        left.remove(hit)
    return _BIN.sub("", pred).split() == _BIN.sub("", gold).split()


def answer_ok(pred: str, gold: str) -> bool:
    if "<point>" in gold:
        return points_match(pred, gold)
    return pred.strip().lower() == gold.strip().lower()


def heldout(model: MolmoModel, tok: Tokenizer, groups: Sequence[Group], batch_size: int = 32,
            max_new_tokens: int = 48) -> dict[str, float]:
    """Accuracy per example kind (and ``all``) over the pairs of ``groups``."""
    items = [(g.image, p, a, g.kind(i)) for g in groups for i, (p, a) in enumerate(g.pairs)]
    hits: dict[str, list[bool]] = defaultdict(list)
    with torch.no_grad():
        for i in range(0, len(items), batch_size):
            chunk = items[i:i + batch_size]
            px = image_tensor([c[0] for c in chunk], model.cfg.image_size)
            outs = generate(model, px, [prompt_ids(tok, c[1]) for c in chunk], max_new_tokens)
            for (_, _, gold, kind), ids in zip(chunk, outs):
                ok = answer_ok(tok.decode(ids), gold)
                hits[kind].append(ok)
                hits["all"].append(ok)
    return {k: sum(v) / len(v) for k, v in sorted(hits.items())}


def world_groups(name: str, n: int, seed: int = 7919) -> list[Group]:
    """``n`` groups of a world stream from a seed the training runs do not use."""
    return list(itertools.islice(WorldSource(name, seed).groups(0), n))

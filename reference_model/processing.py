"""Inputs of the model: images -> pixel tensors, (prompt, answer) texts -> packed token rows.

Shared by training (`train.py`) and inference (the harness adapter), so that both see images and
prompts exactly the same way. Images are stretched to a square (point bins are fractions of the
width and height, so stretching keeps every bin where it was).

A training row packs the examples of one image: ``prompt <answer> answer <eos>`` segments, each
with its own segment id (see `model.attention_mask`). ``targets[t]`` is the token after ``ids[t]``
where the loss applies: answer tokens and <eos> only (``loss_on="answer"``), or every text token
after the first (``loss_on="text"``, caption alignment).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .model import IGNORE
from .tokenizer import Tokenizer


def image_tensor(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """(H, W, 3) uint8 arrays -> (B, 3, size, size) float32 in [0, 1] (bilinear resize)."""
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, im in enumerate(images):
        if im.shape[0] == size and im.shape[1] == size:
            out[i] = im
        else:
            out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(im[..., :3])).resize((size, size), Image.BILINEAR))
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def prompt_ids(tok: Tokenizer, prompt: str) -> list[int]:
    """What generation starts from: the prompt's tokens and the answer marker."""
    return tok.encode(prompt) + [tok.sep_id]


@dataclass(frozen=True)
class Batch:
    pixels: torch.Tensor | None  # (B, 3, S, S); None when the caller supplies encoder features
    ids: torch.Tensor  # (B, T)
    seg: torch.Tensor  # (B, T) segment ids, 0 = padding
    targets: torch.Tensor  # (B, T) next-token targets, IGNORE where no loss
    n_examples: int


def pack_row(tok: Tokenizer, pairs: Sequence[tuple[str, str]], loss_on: str, max_len: int
             ) -> tuple[list[int], list[int], list[int]]:
    """ids, segment ids and targets of one image's (prompt, answer) pairs; pairs that do not fit in
    ``max_len`` are left out (the first always stays, truncated if it must)."""
    ids: list[int] = []
    seg: list[int] = []
    tgt: list[int] = []
    for k, (prompt, answer) in enumerate(pairs, start=1):
        p = prompt_ids(tok, prompt)
        a = tok.encode(answer) + [tok.eos_id]
        s = p + a
        if len(ids) + len(s) > max_len:
            if ids:
                break
            s = s[:max_len]
        first_scored = len(p) - 1 if loss_on == "answer" else 0  # the <answer> marker predicts the answer
        t = [IGNORE] * len(s)
        for j in range(first_scored, len(s) - 1):
            t[j] = s[j + 1]
        ids += s
        seg += [k] * len(s)
        tgt += t
    return ids, seg, tgt


def collate(tok: Tokenizer, rows: Sequence[tuple[np.ndarray, Sequence[tuple[str, str]]]], image_size: int,
            loss_on: str, max_len: int, pixels: bool = True) -> Batch:
    """One batch from (image, [(prompt, answer), ...]) rows, right-padded (``pixels=False``: without
    the image tensor, for a caller with the encoder's features at hand)."""
    packed = [pack_row(tok, pairs, loss_on, max_len) for _, pairs in rows]
    T = max(len(p[0]) for p in packed)
    B = len(rows)
    ids = torch.full((B, T), tok.pad_id, dtype=torch.long)
    seg = torch.zeros(B, T, dtype=torch.long)
    tgt = torch.full((B, T), IGNORE, dtype=torch.long)
    n = 0
    for b, (i, s, t) in enumerate(packed):
        ids[b, :len(i)] = torch.tensor(i)
        seg[b, :len(s)] = torch.tensor(s)
        tgt[b, :len(t)] = torch.tensor(t)
        n += max(s)
    px = image_tensor([im for im, _ in rows], image_size) if pixels else None
    return Batch(px, ids, seg, tgt, n)

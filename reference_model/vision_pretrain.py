"""Stage 0: pre-training the vision encoder on dense labels of world scenes.

Molmo starts from a vision encoder pre-trained elsewhere (CLIP / SigLIP) and keeps it frozen while
the connector learns to caption (our stage 1). Nothing pre-trained can be downloaded here, so the
encoder gets its own short pre-training first: on training-space scenes, every patch predicts what
lies under its centre — the object's category (or background), its colour, and, on signs, the word
written there. A linear head per label sits on the encoder's output and is dropped afterwards.
Dense labels (256 per image) teach semantic, position-aware features far faster than the few
answer tokens of a question.

    scene (world) ──► image + label maps (3, G, G) ──► ViT ──► PatchHead ──► cross-entropy
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .tokenizer import Tokenizer

IGNORE = -100
# Most patches are background; without a weight the category loss is mostly "background" and the
# encoder learned to tell objects apart several times more slowly (fg patch accuracy 0.16 vs 0.29
# after 300 steps of 32 images, measured on the default preset).
FOREGROUND_WEIGHT = 5.0


def char_names() -> tuple[str, ...]:
    from .world.font import CHARSET

    return tuple(sorted(CHARSET))


def label_names() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    from .world.ontology import CATEGORY_NAMES, COLOUR_NAMES, SIGN_NUMBERS, SIGN_WORDS

    return ("background", *CATEGORY_NAMES), ("none", *COLOUR_NAMES), ("none", *SIGN_WORDS, *SIGN_NUMBERS)


@dataclass(frozen=True, eq=False)
class PatchExample:
    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (3, G, G) int64: category, colour, word (IGNORE off sign boards)
    chars: np.ndarray  # (2G, 2G) int64: the glyph under each half-patch's centre (IGNORE off text)


class CharHead(nn.Module):
    """Glyph classifier on the stem's half-resolution map (stage 0 only: an auxiliary target that
    teaches the stem the letters before the encoder is asked for whole words)."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, len(char_names()), kernel_size=1)

    def forward(self, half: torch.Tensor) -> torch.Tensor:
        return self.proj(half)  # (B, n_chars, 2G, 2G)


def tag_sizes() -> tuple[int, ...]:
    """Classes per label of the encoder's patch tagger (ModelConfig.tags)."""
    return tuple(len(names) for names in label_names())


def tag_words(tok: Tokenizer) -> list[int]:
    """The vocabulary id of every tagger class, in order (-1: nothing, or a word the vocabulary
    lacks). Sign words map to their lower-case form, as answers write them."""
    ids = []
    for names in label_names():
        for i, name in enumerate(names):
            found = tok.id_of(name.lower()) if i else None
            ids.append(-1 if found is None else found)
    return ids


def patch_labels(scene: object, grid: int) -> np.ndarray:
    """(3, G, G): what covers the centre of each patch of the stretched image."""
    cats, cols, words = label_names()
    cat_id = {n: i for i, n in enumerate(cats)}
    col_id = {n: i for i, n in enumerate(cols)}
    word_id = {n: i for i, n in enumerate(words)}
    w, h = scene.width, scene.height  # type: ignore[attr-defined]
    ys = np.minimum(((np.arange(grid) + 0.5) * h / grid).astype(int), h - 1)
    xs = np.minimum(((np.arange(grid) + 0.5) * w / grid).astype(int), w - 1)
    out = np.zeros((3, grid, grid), dtype=np.int64)
    out[2] = IGNORE
    for o in scene.objects:  # type: ignore[attr-defined]
        hit = o.mask[np.ix_(ys, xs)]
        out[0][hit] = cat_id[o.category]
        out[1][hit] = col_id.get(o.colour, 0)
        if o.category == "sign":
            x1, y1, x2, _ = o.box
            board = ys < y1 + _board_height(o)
            out[2][hit & board[:, None]] = word_id.get(o.text, 0)
    return out


def _text_scale(o: object) -> int:
    """The glyph scale of a sign, from its board width (signs are never occluded)."""
    from .world.drawing import TEXT_PAD
    from .world.font import GLYPH_W

    bw = o.box[2] - o.box[0]  # type: ignore[attr-defined]
    return max(1, round((bw - 2 * TEXT_PAD) / ((GLYPH_W + 1) * len(o.text) - 1)))  # type: ignore[attr-defined]


def _board_height(o: object) -> int:
    from .world.drawing import TEXT_PAD
    from .world.font import GLYPH_H

    return GLYPH_H * _text_scale(o) + 2 * TEXT_PAD


def char_labels(scene: object, grid: int) -> np.ndarray:
    """(grid, grid): index of the glyph whose cell holds each cell's centre, IGNORE elsewhere."""
    from .world.drawing import TEXT_PAD
    from .world.font import GLYPH_H, GLYPH_W

    char_id = {c: i for i, c in enumerate(char_names())}
    w, h = scene.width, scene.height  # type: ignore[attr-defined]
    ys = (np.arange(grid) + 0.5) * h / grid
    xs = (np.arange(grid) + 0.5) * w / grid
    out = np.full((grid, grid), IGNORE, dtype=np.int64)
    for o in scene.objects:  # type: ignore[attr-defined]
        if o.category != "sign":
            continue
        s = _text_scale(o)
        tx, ty = o.box[0] + TEXT_PAD, o.box[1] + TEXT_PAD
        rows = (ys >= ty) & (ys < ty + GLYPH_H * s)
        for i, ch in enumerate(o.text):
            x0 = tx + i * (GLYPH_W + 1) * s
            cols = (xs >= x0) & (xs < x0 + GLYPH_W * s)
            out[np.ix_(rows, cols)] = char_id[ch]
    return out


# A text-rich scene (the PixMo-Docs of this world): signs only, so that reading sees many words
TEXT_RICH = {"require": {"sign": 4}, "n_objects": (6, 9)}


class SceneSource:
    """Training-space scenes with their patch labels, position-addressed. ``text_every``: every
    k-th scene is a text-rich one (0: none), so that reading sees many more words."""

    name = "scenes"

    def __init__(self, seed: int, grid: int, text_every: int = 0):
        self.seed, self.grid, self.text_every = seed, grid, text_every

    def groups(self, start: int) -> Iterator[PatchExample]:
        from .world.rng import train_scene_id
        from .world.scene import SceneSpec, make_scene

        for i in itertools.count(start):
            spec = SceneSpec(**TEXT_RICH) if self.text_every and i % self.text_every == 0 else None
            scene = make_scene(train_scene_id(self.seed, "vision-pretrain", i), spec)
            yield PatchExample(scene.image, patch_labels(scene, self.grid), char_labels(scene, 2 * self.grid))


def patch_batch(examples: Sequence[PatchExample], cfg: ModelConfig
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from .processing import image_tensor

    labels = torch.from_numpy(np.stack([e.labels for e in examples]))  # (B, 3, G, G)
    chars = torch.from_numpy(np.stack([e.chars for e in examples]))  # (B, 2G, 2G)
    return image_tensor([e.image for e in examples], cfg.image_size), labels, chars


def patch_loss(vision: nn.Module, head: nn.Module, char_head: CharHead | None, pixels: torch.Tensor, labels: torch.Tensor,
               chars: torch.Tensor | None = None, stats: dict[str, list[float]] | None = None,
               word_weight: float = 1.0) -> torch.Tensor:
    """The summed cross-entropies of the labels. ``stats``, when given, collects this batch's
    accuracies on object patches (``category``, ``colour``), on sign boards (``word``) and on glyphs
    (``char``)."""
    feats, half = vision(pixels, with_stem=True)
    logits = head(feats)  # 3 x (B, G*G, C)
    B = labels.shape[0]
    flat = labels.view(B, 3, -1)
    weight = torch.full((logits[0].shape[-1],), FOREGROUND_WEIGHT, device=logits[0].device)
    weight[0] = 1.0  # background
    loss = F.cross_entropy(logits[0].flatten(0, 1), flat[:, 0].flatten(), weight=weight)
    loss = loss + F.cross_entropy(logits[1].flatten(0, 1), flat[:, 1].flatten())
    if bool((flat[:, 2] != IGNORE).any()):
        loss = loss + word_weight * F.cross_entropy(logits[2].flatten(0, 1), flat[:, 2].flatten(), ignore_index=IGNORE)
    if char_head is not None and chars is not None and bool((chars != IGNORE).any()):
        c_logits = char_head(half)  # (B, n_chars, 2G, 2G)
        loss = loss + F.cross_entropy(c_logits, chars, ignore_index=IGNORE)
        if stats is not None:
            on = chars != IGNORE
            stats.setdefault("char", []).append(float((c_logits.argmax(1) == chars)[on].float().mean()))
    if stats is not None:
        with torch.no_grad():
            fg, on_sign = flat[:, 0] > 0, flat[:, 2] != IGNORE
            for name, k, where in (("category", 0, fg), ("colour", 1, fg), ("word", 2, on_sign)):
                if bool(where.any()):
                    hit = logits[k].argmax(-1) == flat[:, k]
                    stats.setdefault(name, []).append(float(hit[where].float().mean()))
    return loss

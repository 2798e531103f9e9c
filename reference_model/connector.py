"""Connector: vision features -> language-model embeddings (between `vision.py` and `lm.py`).

Molmo pools 2x2 patch windows before projecting them; here each pool x pool window is concatenated
(no information lost, 1/pool^2 as many tokens) and a 2-layer MLP with GELU maps it to the LM width.
A LayerNorm on the output keeps visual tokens at the scale of the text: without it the connector
learned to emit one huge, image-independent vector (an attention sink) and the LM stopped looking.
Fixed 2-D sine-cosine embeddings of each window's row and column are then added, so that a visual
token's *value* says where it is: the LM's rotary positions only shape attention scores, and an
answer that points (``<x_k> <y_k>``) must read the position of the token it attends to.

Lexical tags (when the encoder has a patch tagger): each patch's predicted distribution over what
lies there (categories, colours, sign words) is mapped through the language model's own word
embeddings and summed over the window: a visual token showing a red kite then carries the
embeddings of the words "red" and "kite", the words a question uses to name it, and, through the
tied output layer, the words an answer writes. Object tags as anchors between regions and words
follow Oscar (Li et al., 2020); reading words off the image into the answer follows the OCR
tokens of M4C (Hu et al., 2020), which an answer copies from.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class Connector(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.grid, self.pool = cfg.grid, cfg.pool
        d_in = cfg.vit_dim * cfg.pool * cfg.pool
        self.fc1 = nn.Linear(d_in, cfg.dim * 2)
        self.fc2 = nn.Linear(cfg.dim * 2, cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim)
        self.register_buffer("pos", sincos_2d(cfg.grid // cfg.pool, cfg.dim), persistent=False)

        # lexical tags: the vocabulary id of every tagger class (-1: no word) and their gain
        self.register_buffer("tag_ids", torch.full((sum(cfg.tags),), -1, dtype=torch.long))
        self.tag_gain = nn.Parameter(torch.tensor(TAG_GAIN)) if cfg.tags else None

    def windows(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, G*G, C) row-major -> (B, (G/p)^2, p*p, C): the patches of each window."""
        B, _, C = feats.shape
        G, p = self.grid, self.pool
        x = feats.view(B, G // p, p, G // p, p, C).permute(0, 1, 3, 2, 4, 5)  # (B, G/p, G/p, p, p, C)
        return x.reshape(B, (G // p) ** 2, p * p, C)

    def forward(self, feats: torch.Tensor, tag_logits: tuple[torch.Tensor, ...] = (),
                embed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """feats (B, G*G, Dv), row-major -> visual tokens (B, N, D), N = (G/p)^2 row-major over
        windows, and their lexical tags (B, N, D) (None without a tagger). ``tag_logits`` (the
        encoder's tagger output) and ``embed`` (the LM's word embeddings, V x D) make the tags."""
        x = self.windows(feats).flatten(2)  # (B, N, p*p*Dv)
        out = self.norm(self.fc2(F.gelu(self.fc1(x)))) + self.pos
        if not tag_logits or embed is None or self.tag_gain is None:
            return out, None
        tags = self.windows(self.lexical(tag_logits, embed)).sum(dim=2)  # (B, N, D)
        return out + self.tag_gain * tags, tags

    def lexical(self, tag_logits: tuple[torch.Tensor, ...], embed: torch.Tensor) -> torch.Tensor:
        """(B, G*G, D): per patch, the tagger's class probabilities times their words' embeddings."""
        probs = torch.cat([t.softmax(dim=-1) for t in tag_logits], dim=-1)  # (B, G*G, sum(tags))
        known = self.tag_ids >= 0
        table = embed[self.tag_ids.clamp(min=0)] * known[:, None]  # (sum(tags), D); no word -> 0
        return probs @ table


# the tag embedding's starting gain: word embeddings start at std 0.02 (norm ~0.02 sqrt(D)) while the
# connector's LayerNorm output has norm ~sqrt(D); a gain of 50 starts the tags at a comparable scale
TAG_GAIN = 50.0


def axis_code(coord: torch.Tensor, g: int, n: int) -> torch.Tensor:
    """(len(coord), 2n) sine-cosine code of continuous window coordinates along one axis, with
    geometrically spaced frequencies (periods from about 2 windows to about the grid x 16)."""
    freqs = torch.exp(-torch.arange(n, dtype=torch.float64) / n * math.log(16.0 * g)) * math.pi
    ang = coord.double()[:, None] * freqs[None, :]
    return torch.cat([ang.sin(), ang.cos()], dim=1)


def sincos_2d(g: int, dim: int) -> torch.Tensor:
    """(g*g, dim) row-major: the first half of the channels code the row, the second the column."""
    n = dim // 4
    axis = axis_code(torch.arange(g, dtype=torch.float64), g, n)  # (g, 2n)
    rows = axis[:, None, :].expand(g, g, 2 * n)
    cols = axis[None, :, :].expand(g, g, 2 * n)
    out = torch.cat([rows, cols], dim=-1).reshape(g * g, 4 * n)
    return F.pad(out, (0, dim - 4 * n)).float()


def bin_codes(g: int, dim: int, n_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes of the point bins in the same geometry as `sincos_2d`: bin k of x is the column code of
    its centre, bin k of y the row code; (n_bins, dim) each."""
    n = dim // 4
    centre = (torch.arange(n_bins, dtype=torch.float64) + 0.5) / n_bins * g - 0.5  # in window units
    code = axis_code(centre, g, n)
    zeros = torch.zeros_like(code)
    x = F.pad(torch.cat([zeros, code], dim=1), (0, dim - 4 * n))
    y = F.pad(torch.cat([code, zeros], dim=1), (0, dim - 4 * n))
    return x.float(), y.float()

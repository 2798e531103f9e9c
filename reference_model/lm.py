"""Decoder-only language model: pre-norm transformer blocks with rotary positions and a KV cache.

It runs over embeddings that `model.py` assembles (``[<vision_start>, visual tokens, <vision_end>,
text]``); which token may attend to which is a boolean mask passed in, so the same blocks serve
training (packed segments), prefill and one-token decoding steps (`generate.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .vision import Mlp


def rope_tables(head_dim: int, n_pos: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables (n_pos, head_dim / 2) for rotary position embeddings."""
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float(), ang.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, hd); cos/sin (B, 1, T, hd/2): rotate each (first half, second half) pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


GROUNDING_GAIN = 2.0  # a tag match of 1 (one patch surely showing the word) adds 2 to the logit


@dataclass
class KVCache:
    """Preallocated keys/values of every layer: (layers, B, H, S_max, hd); ``length`` positions filled."""

    k: torch.Tensor
    v: torch.Tensor
    length: int = 0

    @classmethod
    def empty(cls, cfg: ModelConfig, batch: int, max_len: int, device: torch.device | str = "cpu") -> KVCache:
        shape = (cfg.layers, batch, cfg.heads, max_len, cfg.dim // cfg.heads)
        return cls(torch.empty(shape, device=device), torch.empty(shape, device=device))


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)
        self.out = nn.Linear(cfg.dim, cfg.dim, bias=False)
        # per-head gains of the grounding biases (model.py), of the token's own word (row 0) and of
        # its segment so far (row 1): one head starts with each, the others learn whether to use them
        gains = torch.zeros(2, cfg.heads)
        gains[0, 0] = gains[1, min(1, cfg.heads - 1)] = GROUNDING_GAIN
        self.ground = nn.Parameter(gains) if cfg.tags else None

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                cache: KVCache | None, layer: int, bias: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:  # write this call's keys/values, attend over everything so far
            s0 = cache.length
            cache.k[layer, :, :, s0:s0 + T] = k
            cache.v[layer, :, :, s0:s0 + T] = v
            k, v = cache.k[layer, :, :, :s0 + T], cache.v[layer, :, :, :s0 + T]
        if bias is not None and self.ground is not None:  # bias (B, 2, T, S) -> per head, -inf where masked
            add = torch.einsum("kh,bkts->bhts", self.ground, bias)  # (B, H, T, S)
            mask = add.masked_fill(~mask, float("-inf"))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # mask (B, 1, T, S): True = may attend
        return self.out(a.transpose(1, 2).reshape(B, T, D))


class DecoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.dim)
        self.mlp = Mlp(cfg.dim, cfg.mlp_ratio * cfg.dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor,
                cache: KVCache | None, layer: int, bias: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin, mask, cache, layer, bias)
        return x + self.mlp(self.norm2(x))


class Decoder(nn.Module):
    """The transformer trunk: embeddings (B, T, D) + positions + mask -> final hidden states (B, T, D)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        n_pos = cfg.prefix_len + cfg.max_len + 1
        cos, sin = rope_tables(cfg.dim // cfg.heads, n_pos, cfg.rope_base)
        if cfg.positions == "learned":  # rotation by zero: attention sees content only
            cos, sin = torch.ones_like(cos), torch.zeros_like(sin)
        self.pos_emb = nn.Embedding(n_pos, cfg.dim) if cfg.positions == "learned" else None
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor,
                cache: KVCache | None = None, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D); pos (B, T) positions; mask (B, 1, T, S) with S = cached length + T; bias
        (B, 2, T, S) the grounding biases of these queries (None: none)."""
        cos, sin = self.cos[pos][:, None], self.sin[pos][:, None]  # (B, 1, T, hd/2)
        if self.pos_emb is not None:
            x = x + self.pos_emb(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, mask, cache, i, bias)
        if cache is not None:
            cache.length += x.shape[1]
        return self.norm(x)

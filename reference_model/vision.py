"""Vision encoder: a ViT over image patches (the first part of the Molmo pipeline).

    pixels (B, 3, S, S) ──conv patch embedding──► (B, G*G, D) + 2-D position embeddings
    ──pre-norm transformer blocks──► LayerNorm ──► patch features (B, G*G, D) ──► connector

The patch embedding is a convolutional stem, the "hybrid" ViT of Dosovitskiy et al. (2021): 3 x 3
convolutions of stride 2, each followed by GroupNorm and GELU, halve the image until one feature
vector stands for a p x p patch. Early convolutions make small ViTs train faster and more stably
(Xiao et al., 2021); here they also see the 2-pixel strokes of sign glyphs at full resolution,
which a single p x p convolution over a downscaled image could not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

# per-channel statistics of the synthetic world's images (close enough for any RGB input)
PIXEL_MEAN = (0.5, 0.5, 0.5)
PIXEL_STD = (0.25, 0.25, 0.25)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc = nn.Linear(dim, hidden)
        self.proj = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block with full (bidirectional) self-attention over patches."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, hd)
        x = x + self.out(a.transpose(1, 2).reshape(B, N, D))
        return x + self.mlp(self.norm2(x))


def patch_embedding(cfg: ModelConfig) -> nn.Module:
    """(B, 3, S, S) -> (B, vit_dim, S/p, S/p): stride-2 3 x 3 convolutions through cfg.stem's channels."""
    layers: list[nn.Module] = []
    c_in = 3
    for c in cfg.stem:
        layers += [nn.Conv2d(c_in, c, kernel_size=3, stride=2, padding=1, bias=False), nn.GroupNorm(8, c), nn.GELU()]
        c_in = c
    layers.append(nn.Conv2d(c_in, cfg.vit_dim, kernel_size=3, stride=2, padding=1))
    return nn.Sequential(*layers)


class PatchHead(nn.Module):
    """Linear heads on the encoder's patch features: logits of what lies under each patch, one
    label per entry of ``sizes`` (category, colour, sign word; class 0 = nothing)."""

    def __init__(self, dim: int, sizes: tuple[int, ...]):
        super().__init__()
        self.sizes = sizes
        self.proj = nn.Linear(dim, sum(sizes))

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.proj(feats).split(self.sizes, dim=-1))  # each (B, N, classes)


class VisionEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        D, G = cfg.vit_dim, cfg.grid
        self.patch = patch_embedding(cfg)
        # 2-D position: a learned embedding per row plus one per column
        self.row = nn.Parameter(torch.randn(G, D) * 0.02)
        self.col = nn.Parameter(torch.randn(G, D) * 0.02)
        self.blocks = nn.ModuleList(EncoderBlock(D, cfg.vit_heads, cfg.mlp_ratio) for _ in range(cfg.vit_layers))
        self.norm = nn.LayerNorm(D)
        self.head = PatchHead(D, cfg.tags) if cfg.tags else None
        self.register_buffer("mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor, with_stem: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """pixels: (B, 3, S, S) floats in [0, 1] -> patch features (B, G*G, D), row-major; with
        ``with_stem`` also the stem's last half-resolution map (B, stem[-1], 2G, 2G)."""
        x = (pixels - self.mean) / self.std
        half = self.patch[:-1](x)  # (B, C, 2G, 2G)
        x = self.patch[-1](half)  # (B, D, G, G)
        x = x.flatten(2).transpose(1, 2)  # (B, G*G, D)
        G = self.cfg.grid
        pos = (self.row[:, None, :] + self.col[None, :, :]).reshape(G * G, -1)  # (G*G, D)
        x = x + pos
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return (x, half) if with_stem else x

"""Model configuration: one frozen dataclass and named presets.

Every other module of the model reads a `ModelConfig`; checkpoints store it as JSON next to the
weights (`checkpoint.py`), so a checkpoint rebuilds exactly the model that wrote it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    # vision encoder (hybrid ViT): images are resized to image_size x image_size; a convolutional
    # stem of stride-2 3x3 convolutions (channels stem[0], stem[1], ..., then vit_dim) turns them into
    # patch_size x patch_size patches, so len(stem) + 1 == log2(patch_size)
    image_size: int = 256
    patch_size: int = 16
    stem: tuple[int, ...] = (32, 64, 128)
    vit_dim: int = 128
    vit_layers: int = 3
    vit_heads: int = 4
    # patch tagger: linear heads on the encoder's patches naming what lies there (classes per label,
    # index 0 = nothing: category, colour, sign word); () for none. See connector.py for their use.
    tags: tuple[int, ...] = ()
    # connector: pool x pool neighbouring patches are concatenated, then a 2-layer GELU MLP
    pool: int = 2
    # language model (decoder only, pre-norm, rotary positions)
    dim: int = 192
    layers: int = 4
    heads: int = 6
    mlp_ratio: int = 4
    vocab_size: int = 1024  # set from the tokenizer when a model is built for training
    max_len: int = 512  # longest text (prompt + answer) the rotary tables cover
    rope_base: float = 10000.0
    positions: str = "rope"  # "rope": rotary positions in attention; "learned": learned absolute embeddings
    # the design's optional PointingModule: regress (x, y) at every <point> token
    pointing_head: bool = False
    # point bins written from a pointer over the visual tokens (see pointer.py)
    pointer: bool = False

    @property
    def grid(self) -> int:
        """Patches per side of the vision encoder."""
        return self.image_size // self.patch_size

    @property
    def n_visual(self) -> int:
        """Visual tokens handed to the language model (after pooling)."""
        return (self.grid // self.pool) ** 2

    @property
    def prefix_len(self) -> int:
        """<vision_start> + visual tokens + <vision_end>."""
        return self.n_visual + 2

    def validate(self) -> ModelConfig:
        assert self.image_size % self.patch_size == 0, "image_size must be a multiple of patch_size"
        assert self.grid % self.pool == 0, "patches per side must be a multiple of pool"
        assert 2 ** (len(self.stem) + 1) == self.patch_size, "the stem halves the image len(stem) + 1 times"
        assert self.vit_dim % self.vit_heads == 0 and self.dim % self.heads == 0
        assert (self.dim // self.heads) % 2 == 0, "rotary embeddings need an even head size"
        return self

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config field(s): {', '.join(unknown)}")
        d = {k: tuple(v) if k in ("stem", "tags") else v for k, v in d.items()}
        return cls(**d).validate()


PRESETS: dict[str, ModelConfig] = {
    # unit tests: a forward pass in milliseconds
    "tiny": ModelConfig(image_size=32, patch_size=8, stem=(8, 16), vit_dim=32, vit_layers=1, vit_heads=2, pool=2,
                        dim=32, layers=2, heads=2, mlp_ratio=2, max_len=256),
    # quick experiments and the ablation grid (with the pointer, as the bundled recipe)
    "small": ModelConfig(image_size=128, patch_size=8, stem=(24, 48), vit_dim=96, vit_layers=2, vit_heads=4, pool=2,
                         dim=128, layers=3, heads=4, pointer=True),
    # the bundled checkpoint
    "default": ModelConfig(pointer=True),
}


def preset(name: str, **overrides: Any) -> ModelConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r} (expected one of {', '.join(PRESETS)})")
    return replace(PRESETS[name], **overrides).validate()

"""Matmul FLOPs of the model, counted from its config (for model-FLOP-utilization numbers).

Counts the multiply-adds of every matrix product (2 FLOPs each): patch-embedding convolutions,
projections, MLPs, attention scores and weighted sums, and the output layer. Norms, activations
and softmax are left out, as in PaLM's MFU definition. A training step costs 3x its forward pass
(backward = 2x forward), less for frozen parts (no weight gradients), which this ignores.
"""

from __future__ import annotations

from .config import ModelConfig


def vision_flops(cfg: ModelConfig) -> float:
    """Forward FLOPs of the ViT and the connector for one image."""
    D, N = cfg.vit_dim, cfg.grid ** 2
    if cfg.stem_channels > 0:
        h = cfg.patch_size // 2
        stem = 2 * (cfg.image_size // h) ** 2 * cfg.stem_channels * 3 * h * h + 2 * N * D * cfg.stem_channels * 4
    else:
        stem = 2 * N * D * 3 * cfg.patch_size ** 2
    per_layer = 2 * N * D * (3 * D + D + 2 * cfg.mlp_ratio * D) + 4 * N * N * D
    connector = 2 * cfg.n_visual * (cfg.pool ** 2 * D * 2 * cfg.dim + 2 * cfg.dim * cfg.dim)
    return float(stem + cfg.vit_layers * per_layer + connector)


def lm_flops(cfg: ModelConfig, n_tokens: int, n_keys: float, n_logits: int) -> float:
    """Forward FLOPs of the decoder for ``n_tokens`` queries attending to ``n_keys`` keys on average,
    with the output layer applied at ``n_logits`` positions."""
    D = cfg.dim
    dense = 2 * n_tokens * D * (3 * D + D + 2 * cfg.mlp_ratio * D)
    attention = 4 * n_tokens * n_keys * D
    return float(cfg.layers * (dense + attention) + 2 * n_logits * D * cfg.vocab_size)


def sequence_flops(cfg: ModelConfig, n_text: int) -> float:
    """Forward FLOPs of one full sequence: image, prefix and ``n_text`` text tokens (causal: a token
    attends to the prefix and, on average, half the text)."""
    P = cfg.prefix_len
    prefix = lm_flops(cfg, P, P, 0)
    text = lm_flops(cfg, n_text, P + (n_text + 1) / 2, n_text)
    return vision_flops(cfg) + prefix + text


def decode_step_flops(cfg: ModelConfig, n_keys: int) -> float:
    """Forward FLOPs of one cached decoding step (one new token attending to ``n_keys`` keys)."""
    return lm_flops(cfg, 1, n_keys, 1)

"""Pointer: the point bins written from where the model looks (between `lm.py` and the output layer).

An answer points with ``<point> <x_k> <y_k>``. Written through the tied output layer alone, the
k-th bin has to be read off the *value* of the visual token the decoder attends to (the position
code the connector adds); the decoder learned that poorly (held-out single-object pointing 5.6% in
v3, 18% in v2) while it learned *which* token a question names well (GQA 76.5%, POPE F1 89).

So the bins are factored, in the spirit of pointer networks (Vinyals et al., 2015) and of the
pointing heads of detection-free grounding models: the distribution over the 100 x bins is

    p(x_k) = p(column of k) * p(k | its column)

where p(column) sums a softmax over the visual tokens (``N = G x G`` windows, row-major) --
a query from the hidden state at ``<point>`` against keys from the visual tokens' final hidden
states, plus the grounding match of the answer's words so far with each token's lexical tags -- and
p(k | column) is the tied output layer's distribution renormalised within the column (the offset
inside the window). The y bin after an ``<x_k>`` does the same over rows, with the pointer
restricted to the column of k. The total probability the output layer gives to "some bin" is kept,
so whether to point at all (or stop, or say "There are none.") is the language model's decision.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig


class Pointer(nn.Module):
    def __init__(self, cfg: ModelConfig, n_bins: int, seed: int = 1234):
        super().__init__()
        self.g = cfg.grid // cfg.pool  # windows per side
        D = cfg.dim
        # drawn from its own generator (and no nn.Linear, which draws from the global one): adding
        # the pointer leaves every other initial weight, and the global random state, as they were
        gen = torch.Generator().manual_seed(seed)
        self.wq = nn.Parameter(torch.randn(D, D, generator=gen) * 0.02)  # query from the hidden state
        self.wk = nn.Parameter(torch.randn(D, D, generator=gen) * 0.02)  # key from a visual token
        self.gain = nn.Parameter(torch.tensor(1.0))  # weight of the grounding match
        self.inhibit = nn.Parameter(torch.tensor(4.0))  # against pointing at the previous point's token again
        # the window column (for x) / row (for y) of each bin's centre
        cell = ((torch.arange(n_bins) + 0.5) / n_bins * self.g).floor().long()
        self.register_buffer("cell", cell, persistent=False)
        self.register_buffer("member", torch.nn.functional.one_hot(cell, self.g).bool(), persistent=False)

    def log_probs(self, h: torch.Tensor, vis: torch.Tensor, match: torch.Tensor,
                  prev: torch.Tensor | None = None) -> torch.Tensor:
        """h (K, D) at K pointing positions, vis (K, N, D) their images' visual tokens, match (K, N)
        the grounding match -> log p over the visual tokens (K, N).

        prev (K, 2): the bins (x, y) of the answer's previous point (-1: none yet), for the x step
        of a further point. Answers list their points left to right (the world's convention, as
        PixMo-Points'), so columns left of the previous point are ruled out, and the previous point's
        own token is inhibited (a learned penalty) rather than pointed at twice."""
        scores = torch.einsum("kd,knd->kn", h @ self.wq, vis @ self.wk) / h.shape[-1] ** 0.5
        scores = scores + self.gain * match
        if prev is not None:
            G, N = self.g, scores.shape[-1]
            has = (prev[:, 0] >= 0)[:, None]
            col, row = self.cell[prev[:, 0].clamp(min=0)], self.cell[prev[:, 1].clamp(min=0)]  # (K,)
            n = torch.arange(N, device=scores.device)[None, :]
            left = has & (n % G < col[:, None])
            same = has & (n == (row * G + col)[:, None])
            # a large finite penalty, not -inf: a column with every token ruled out must still give
            # finite log-sum-exps (and gradients) in `bins`
            scores = scores.masked_fill(left, -1e4) - self.inhibit * same
        return scores.log_softmax(dim=-1)

    def bins(self, f: torch.Tensor, logp: torch.Tensor, is_y: torch.Tensor, x_bin: torch.Tensor) -> torch.Tensor:
        """f (K, n_bins): the output layer's logits of the bins to write (x bins, or y bins where
        ``is_y``); logp (K, N) from `log_probs`; x_bin (K,) the x bin just written (used where is_y)
        -> the factored logits (K, n_bins), with the same log-sum-exp as f."""
        G = self.g
        grid = logp.view(-1, G, G)  # (K, rows, cols)
        by_col = grid.logsumexp(dim=1)  # (K, G): x picks a column
        in_col = self.cell[x_bin][:, None, None] == torch.arange(G, device=f.device)[None, None, :]
        rows = grid.masked_fill(~in_col, float("-inf")).logsumexp(dim=2)  # (K, G): y, within x's column
        coarse = torch.where(is_y[:, None], rows - rows.logsumexp(-1, keepdim=True), by_col)  # (K, G)
        neg = torch.finfo(f.dtype).min
        within = f[:, :, None].masked_fill(~self.member[None], neg).logsumexp(dim=1)  # (K, G)
        fine = f - within[:, self.cell]  # log p(bin | its cell)
        return f.logsumexp(-1, keepdim=True) + coarse[:, self.cell] + fine

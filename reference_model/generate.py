"""Batched greedy decoding with a KV cache (inference side of `model.py`).

Layout of a batch: ``[prefix (P)] [left padding] [prompt ids ... <answer>]``, then one new token per
step. Prompts are left-padded so that every sequence's next token sits in the same column; the
padding is masked out as a key and skipped by the positions (each text token's position is P + its
index among real tokens), so a sequence decodes to the same tokens alone or in any batch.
`generate_uncached` re-runs the whole sequence every step: the reference for tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .lm import KVCache
from .model import MolmoModel, Prefix
from .tokenizer import N_BINS, SPECIALS

_EOS, _PAD, _POINT = SPECIALS.index("<eos>"), SPECIALS.index("<pad>"), SPECIALS.index("<point>")
_X0, _Y0 = SPECIALS.index("<x_0>"), SPECIALS.index("<y_0>")


def fit_new_tokens(model: MolmoModel, prompts: Sequence[Sequence[int]], max_new_tokens: int) -> int:
    """``max_new_tokens``, cut so that the longest prompt plus its answer stays within the rotary
    position table (``cfg.max_len`` text positions); a prompt that leaves no room is an error."""
    longest = max(len(p) for p in prompts)
    room = model.cfg.max_len - longest
    if room < 1:
        raise ValueError(f"a prompt of {longest} tokens leaves no room to answer: the model reads at most "
                         f"{model.cfg.max_len} text tokens (prompt and answer)")
    return min(max_new_tokens, room)


def left_pad(prompts: Sequence[Sequence[int]], prefix_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids (B, L) left-padded, key validity (B, P+L), positions (B, P+L)."""
    B, L = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((B, L), _PAD, dtype=torch.long)
    valid = torch.zeros(B, L, dtype=torch.bool)
    for b, p in enumerate(prompts):
        if p:
            ids[b, L - len(p):] = torch.tensor(list(p), dtype=torch.long)
            valid[b, L - len(p):] = True
    text_pos = prefix_len + (valid.long().cumsum(1) - 1).clamp(min=0)
    pos = torch.cat([torch.arange(prefix_len).expand(B, -1), text_pos], dim=1)
    key_valid = torch.cat([torch.ones(B, prefix_len, dtype=torch.bool), valid], dim=1)
    return ids, key_valid, pos


def prefill_mask(key_valid: torch.Tensor, prefix_len: int) -> torch.Tensor:
    """(B, 1, S, S): causal over the text, prefix visible to all, padding keys hidden."""
    S = key_valid.shape[1]
    i = torch.arange(S)
    allowed = (i[None, :] <= i[:, None]) | (i[None, :] < prefix_len)  # (S, S)
    return (allowed[None] & key_valid[:, None, :])[:, None]


class _Greedy:
    """Chooses each next token: argmax, except the two bin tokens after <point> when the model has
    a regression PointingModule (then the head writes the bins)."""

    def __init__(self, model: MolmoModel, batch: int):
        self.model = model
        self.pending_y = torch.full((batch,), -1, dtype=torch.long)
        self.prev = torch.full((batch, 2), -1, dtype=torch.long)  # the answer's latest point (x, y) bins

    def __call__(self, h_last: torch.Tensor, last_token: torch.Tensor, vis: torch.Tensor,
                 match: torch.Tensor | None) -> torch.Tensor:
        """h_last (B, D), last_token (B,), vis (B, N, D) the visual tokens' final hidden states, match
        (B, N) the grounding match of h_last's position (None: no tags) -> the next tokens (B,)"""
        logits = self.model.pointed(self.model.logits(h_last)[:, None], h_last[:, None], vis,
                                    last_token[:, None], None if match is None else match[:, None],
                                    self.prev[:, None])
        nxt = self._choose(logits[:, 0], h_last, last_token)
        is_x = (last_token >= _X0) & (last_token < _X0 + N_BINS)  # an x bin, then its y bin: a point
        is_y = (nxt >= _Y0) & (nxt < _Y0 + N_BINS)
        done = is_x & is_y
        self.prev = torch.where(done[:, None], torch.stack([last_token - _X0, nxt - _Y0], -1), self.prev)
        return nxt

    def _choose(self, logits: torch.Tensor, h_last: torch.Tensor, last_token: torch.Tensor) -> torch.Tensor:
        nxt = logits.argmax(-1)  # (B,)
        if self.model.pointing is None:
            return nxt
        nxt = torch.where(self.pending_y >= 0, self.pending_y, nxt)
        at_point = last_token == _POINT
        xy = (self.model.pointing(h_last) * N_BINS).floor().long().clamp(0, N_BINS - 1)  # (B, 2)
        nxt = torch.where(at_point, _X0 + xy[:, 0], nxt)
        self.pending_y = torch.where(at_point, _Y0 + xy[:, 1], torch.full_like(nxt, -1))
        return nxt


@torch.no_grad()
def generate(model: MolmoModel, pixels: torch.Tensor | None, prompts: Sequence[Sequence[int]],
             max_new_tokens: int = 32, *, prefix: Prefix | None = None) -> list[list[int]]:
    """Greedy continuation of each prompt (ids ending with <answer>), stopping at <eos>.

    pixels (B, 3, S, S) in [0, 1], or ``prefix``: the images' prefix already computed by
    `MolmoModel.prefix` (a caller that meets one image several times computes it once).
    Returns the new tokens of each sequence, without the <eos>."""
    model.eval()
    P, B = model.cfg.prefix_len, len(prompts)
    max_new_tokens = fit_new_tokens(model, prompts, max_new_tokens)
    ids, key_valid, pos = left_pad(prompts, P)
    if prefix is None:
        assert pixels is not None, "generate needs pixels or a prefix"
        prefix = model.prefix(pixels)
    cache = KVCache.empty(model.cfg, B, key_valid.shape[1] + max_new_tokens, prefix.emb.device)
    emb = model.embed(ids)
    x = torch.cat([prefix.emb, emb], dim=1)
    words = emb * key_valid[:, P:, None]  # padding contributes nothing
    context = words.cumsum(dim=1)
    bias = model.sequence_bias(words, context, prefix)
    hall = model.step(x, pos, prefill_mask(key_valid, P), cache, bias)  # (B, P+L, D)
    h, match = hall[:, -1], _match(model, bias, -1)
    running = context[:, -1]  # (B, D) the prompt's word embeddings so far
    vis = hall[:, 1:1 + model.cfg.n_visual]  # (B, N, D), fixed once the prefix is computed
    choose, last = _Greedy(model, B), ids[:, -1]
    next_pos = pos[:, -1] + 1
    out = torch.full((B, max_new_tokens), _EOS, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    for t in range(max_new_tokens):
        tok = torch.where(done, _EOS, choose(h, last, vis, match))
        out[:, t] = tok
        done |= tok == _EOS
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        key_valid = torch.cat([key_valid, torch.ones(B, 1, dtype=torch.bool)], dim=1)
        new = model.embed(tok)[:, None]  # (B, 1, D)
        running = running + new[:, 0]
        bias = model.grounding(new, running[:, None], prefix, key_valid.shape[1])
        h, match = model.step(new, next_pos[:, None], key_valid[:, None, None, :], cache, bias)[:, -1], _match(model, bias, -1)
        last, next_pos = tok, next_pos + 1
    return [_until_eos(row) for row in out.tolist()]


@torch.no_grad()
def generate_uncached(model: MolmoModel, pixels: torch.Tensor, prompts: Sequence[Sequence[int]],
                      max_new_tokens: int = 32) -> list[list[int]]:
    """The same decoding without a cache: the whole sequence (image included) is re-run every step."""
    model.eval()
    P, B = model.cfg.prefix_len, len(prompts)
    max_new_tokens = fit_new_tokens(model, prompts, max_new_tokens)
    seqs = [list(p) for p in prompts]
    choose = _Greedy(model, B)
    done = torch.zeros(B, dtype=torch.bool)
    out: list[list[int]] = [[] for _ in range(B)]
    for _ in range(max_new_tokens):
        ids, key_valid, pos = left_pad(seqs, P)
        prefix = model.prefix(pixels)
        emb = model.embed(ids)
        x = torch.cat([prefix.emb, emb], dim=1)
        words = emb * key_valid[:, P:, None]
        bias = model.sequence_bias(words, words.cumsum(dim=1), prefix)
        hall = model.step(x, pos, prefill_mask(key_valid, P), None, bias)
        tok = torch.where(done, _EOS, choose(hall[:, -1], ids[:, -1], hall[:, 1:1 + model.cfg.n_visual],
                                             _match(model, bias, -1)))
        for b in range(B):
            seqs[b].append(int(tok[b]))
            if not done[b]:
                out[b].append(int(tok[b]))
        done |= tok == _EOS
        if bool(done.all()):
            break
    return [_until_eos(row) for row in out]


def _match(model: MolmoModel, bias: torch.Tensor | None, query: int) -> torch.Tensor | None:
    """(B, N): the grounding match (the context channel of the bias) of one query row with the
    visual tokens, which sit after <vision_start>; None without tags."""
    if bias is None:
        return None
    return bias[:, 1, query, 1:1 + model.cfg.n_visual]


def _until_eos(row: Sequence[int]) -> list[int]:
    row = list(row)
    return row[:row.index(_EOS)] if _EOS in row else row

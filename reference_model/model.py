"""The reference Molmo model: ViT -> MLP connector -> decoder LM, composed over one sequence

    [<vision_start>, visual tokens (n_visual), <vision_end>, text segment 1, text segment 2, ...]

Masking (`attention_mask`): the visual prefix attends to itself (bidirectionally) and is visible
to every text token; a text token sees earlier tokens of its own segment only, never a later one.
Several question/answer segments about the same image can therefore share one image encoding in
training (as Molmo packs the many annotations of an image), and each segment's positions restart
after the prefix, so a packed segment computes exactly what it would alone.

Grounding attention: when the encoder tags its patches (see connector.py), every text token's
attention to a visual token gets an additive bias, per head a learned gain times the match between
the text token's word embedding (and of its segment's words so far) and the visual token's tags,
so "kite" in a question looks at the
tokens tagged "kite" from the first step of training instead of after a long plateau (a small
decoder trained from scratch did not learn this content match in 600 steps, even from text).

``forward(pixels, ids, seg, pos, targets) -> (logits, loss)``; `generate.py` drives inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .connector import Connector, bin_codes
from .lm import Decoder, KVCache
from .pointer import Pointer
from .tokenizer import N_BINS, POINT, SPECIALS
from .vision import VisionEncoder

IGNORE = -100
_VISION_START, _VISION_END = SPECIALS.index("<vision_start>"), SPECIALS.index("<vision_end>")
_POINT, _X0 = SPECIALS.index(POINT), SPECIALS.index("<x_0>")
_Y0 = _X0 + N_BINS
_ANSWER = SPECIALS.index("<answer>")


def attention_mask(seg: torch.Tensor, prefix_len: int) -> torch.Tensor:
    """Boolean mask (B, 1, P+T, P+T), True where query i may attend to key j.

    seg (B, T): segment id of each text token, 0 for padding. Prefix keys are visible to every
    query; a text key j is visible to query i when both are in the same segment and j <= i.
    Padding queries see the prefix only (so no row is empty)."""
    B, T = seg.shape
    P = prefix_len
    i = torch.arange(T, device=seg.device)
    causal = i[None, :] <= i[:, None]  # (T, T) key <= query
    same = (seg[:, :, None] == seg[:, None, :]) & (seg[:, None, :] > 0)  # (B, T, T)
    text = same & causal
    mask = torch.zeros(B, P + T, P + T, dtype=torch.bool, device=seg.device)
    mask[:, :, :P] = True
    mask[:, P:, P:] = text
    return mask[:, None]


def segment_positions(seg: torch.Tensor, prefix_len: int) -> torch.Tensor:
    """Positions (B, P+T): 0..P-1 for the prefix, then P + index within each text segment."""
    B, T = seg.shape
    idx = torch.arange(T, device=seg.device).expand(B, -1)
    start = torch.ones(B, T, dtype=torch.bool, device=seg.device)
    start[:, 1:] = seg[:, 1:] != seg[:, :-1]  # segments are contiguous runs of one id
    first = torch.cummax(torch.where(start, idx, torch.zeros_like(idx)), dim=1).values
    pos = idx - first
    prefix = torch.arange(prefix_len, device=seg.device).expand(B, -1)
    return torch.cat([prefix, pos + prefix_len], dim=1)


@dataclass(frozen=True)
class Prefix:
    """What the language model gets from an image: the prefix embeddings (B, P, D) and the visual
    tokens' lexical tags (B, N, D), None without a tagger."""

    emb: torch.Tensor
    tags: torch.Tensor | None = None

    def split(self) -> list[Prefix]:
        tags = [None] * len(self.emb) if self.tags is None else list(self.tags)
        return [Prefix(e, t) for e, t in zip(self.emb, tags)]

    @staticmethod
    def stack(items: list[Prefix]) -> Prefix:
        tags = None if items[0].tags is None else torch.stack([p.tags for p in items])  # type: ignore[misc]
        return Prefix(torch.stack([p.emb for p in items]), tags)


def segment_cumsum(x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """x (B, T, D) summed over each segment up to and including each token (segments are
    contiguous runs of one id in seg (B, T))."""
    B, T = seg.shape
    csum = x.cumsum(dim=1)
    idx = torch.arange(T, device=seg.device).expand(B, -1)
    start = torch.ones(B, T, dtype=torch.bool, device=seg.device)
    start[:, 1:] = seg[:, 1:] != seg[:, :-1]
    first = torch.cummax(torch.where(start, idx, torch.zeros_like(idx)), dim=1).values  # (B, T)
    before = torch.where((first > 0)[..., None], csum.gather(1, (first - 1).clamp(min=0)[..., None].expand_as(x)),
                         torch.zeros_like(x))
    return csum - before


def previous_points(ids: torch.Tensor) -> torch.Tensor:
    """(B, T, 2): at each position the (x, y) bins of the latest point written since the latest
    <answer> (a prompt's points are not the answer's), -1 where there is none. ids (B, T)."""
    B, T = ids.shape
    idx = torch.arange(T, device=ids.device).expand(B, -1)
    is_x = (ids >= _X0) & (ids < _X0 + N_BINS)
    last_x = torch.cummax(torch.where(is_x, idx, -1), dim=1).values  # (B, T)
    last_answer = torch.cummax(torch.where(ids == _ANSWER, idx, -1), dim=1).values
    ok = (last_x >= 0) & (last_x > last_answer) & (last_x < idx)  # a finished x bin before this token
    x = ids.gather(1, last_x.clamp(min=0)) - _X0
    y = ids.gather(1, (last_x + 1).clamp(max=T - 1)) - _Y0
    ok = ok & (y >= 0) & (y < N_BINS)
    return torch.where(ok[..., None], torch.stack([x, y], dim=-1), -1)


class PointingModule(nn.Module):
    """Optional regression head: (x, y) in [0, 1] from the hidden state at each <point> token."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc2(F.gelu(self.fc1(h))))


class MolmoModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg.validate()
        self.vision = VisionEncoder(cfg)
        self.connector = Connector(cfg)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.decoder = Decoder(cfg)
        self.pointing = PointingModule(cfg.dim) if cfg.pointing_head else None
        self.apply(_init)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith(("out.weight", "proj.weight")):
                depth = cfg.layers if name.startswith("decoder") else cfg.vit_layers
                nn.init.normal_(p, std=0.02 / (2 * depth) ** 0.5)
        self.init_point_embeddings()
        # last, from its own generator: every other initial weight is the same with or without it
        self.pointer = Pointer(cfg, N_BINS) if cfg.pointer else None

    def init_point_embeddings(self, scale: float = 0.1) -> None:
        """Start the <x_k> / <y_k> embeddings (input and, tied, output) from the connector's position
        code of the bin centres: reading a point in a prompt and writing one share the geometry of
        the visual tokens, instead of 200 unrelated classes learned one by one."""
        if self.cfg.vocab_size < _Y0 + N_BINS:
            return
        x, y = bin_codes(self.cfg.grid // self.cfg.pool, self.cfg.dim, N_BINS)
        with torch.no_grad():
            self.embed.weight[_X0:_X0 + N_BINS] = scale * x
            self.embed.weight[_Y0:_Y0 + N_BINS] = scale * y

    def set_tag_words(self, ids: list[int]) -> None:
        """The vocabulary id of each tagger class (-1: no word), in the tagger's class order."""
        assert len(ids) == self.connector.tag_ids.numel(), "one id per tagger class"
        self.connector.tag_ids.copy_(torch.tensor(ids, dtype=torch.long))

    # --- parts -----------------------------------------------------------------------------
    def parts(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part, for per-part freezing and learning rates (torchtune's fusion idea)."""
        groups: dict[str, list[nn.Parameter]] = {"vision": [], "connector": [], "lm": []}
        # (the pointer belongs to the language model's part)
        for name, p in self.named_parameters():
            key = name.split(".")[0]
            groups["vision" if key == "vision" else "connector" if key == "connector" else "lm"].append(p)
        return groups

    def prefix(self, pixels: torch.Tensor | None = None, feats: torch.Tensor | None = None) -> Prefix:
        """pixels (B, 3, S, S) in [0, 1], or the vision encoder's output for them (B, G*G, Dv), as
        a frozen encoder's cached features -> the prefix (embeddings (B, P, D) and tags)."""
        feats = self.vision(pixels) if feats is None else feats  # (B, G*G, Dv)
        logits = self.vision.head(feats) if self.vision.head is not None else ()
        vis, tags = self.connector(feats, logits, self.embed.weight)  # (B, N, D) each
        B = vis.shape[0]
        ends = self.embed(torch.tensor([_VISION_START, _VISION_END], device=vis.device))  # (2, D)
        return Prefix(torch.cat([ends[0].expand(B, 1, -1), vis, ends[1].expand(B, 1, -1)], dim=1), tags)

    def grounding(self, words: torch.Tensor, context: torch.Tensor, prefix: Prefix, n_keys: int
                  ) -> torch.Tensor | None:
        """(B, 2, T, n_keys) attention bias of T text queries towards the keys, from their word
        embeddings ``words`` (B, T, D) and the sums of their segments' word embeddings so far
        ``context`` (B, T, D): the match of each with each visual token's tags, in units of the tag
        words' mean squared norm (so a sure tag of the word itself matches about 1); 0 towards every
        other key. None without tags. A question's noun grounds its own token; the context carries
        it to the answer position."""
        if prefix.tags is None:
            return None
        ids = self.connector.tag_ids
        scale = self.embed.weight.detach()[ids[ids >= 0]].pow(2).sum(-1).mean()
        match = torch.einsum("bktd,bnd->bktn", torch.stack([words, context], 1), prefix.tags) / scale
        bias = match.new_zeros(*match.shape[:3], n_keys)
        bias[..., 1:1 + match.shape[-1]] = match  # the visual tokens sit after <vision_start>
        return bias

    def sequence_bias(self, words: torch.Tensor, context: torch.Tensor, prefix: Prefix) -> torch.Tensor | None:
        """(B, 2, P+T, P+T) grounding biases of a whole [prefix, text] sequence: `grounding` for the
        T text queries, none for the prefix's own queries."""
        P, T = prefix.emb.shape[1], words.shape[1]
        bias = self.grounding(words, context, prefix, P + T)
        if bias is None:
            return None
        return torch.cat([bias.new_zeros(bias.shape[0], 2, P, P + T), bias], dim=2)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.embed.weight.T  # tied input/output embeddings

    def pointed(self, logits: torch.Tensor, h: torch.Tensor, vis: torch.Tensor, ids: torch.Tensor,
                match: torch.Tensor | None, prev: torch.Tensor | None = None) -> torch.Tensor:
        """The logits (B, T, V) with the bins written by the pointer (pointer.py) where the input
        token is <point> (an x bin follows) or an x bin (a y bin follows); unchanged elsewhere and
        without a pointer. h (B, T, D) the final hidden states there, vis (B, N, D) the visual
        tokens' final hidden states, ids (B, T) the input tokens, match (B, T, N) the grounding
        match of the segment's words so far with each visual token's tags (None: no tags), prev
        (B, T, 2) the bins of the answer's previous point (`previous_points`; None: worked out from ids)."""
        if self.pointer is None:
            return logits
        at_x = ids == _POINT
        at_y = (ids >= _X0) & (ids < _X0 + N_BINS)
        sel = at_x | at_y
        if not bool(sel.any()):
            return logits
        b, t = sel.nonzero(as_tuple=True)  # K pointing positions
        m = match[b, t] if match is not None else vis.new_zeros(len(b), vis.shape[1])
        is_y = at_y[b, t]
        prev = (previous_points(ids) if prev is None else prev)[b, t]  # (K, 2)
        prev = torch.where(is_y[:, None], -1, prev)  # only an x step looks back
        logp = self.pointer.log_probs(h[b, t], vis[b], m, prev)  # (K, N)
        first = torch.where(is_y, _Y0, _X0)[:, None] + torch.arange(N_BINS, device=ids.device)  # (K, N_BINS)
        f = logits[b[:, None], t[:, None], first]
        new = self.pointer.bins(f, logp, is_y, (ids[b, t] - _X0).clamp(0, N_BINS - 1))
        logits = logits.clone()
        logits[b[:, None], t[:, None], first] = new
        return logits

    # --- training / scoring ----------------------------------------------------------------
    def forward(self, pixels: torch.Tensor | None, ids: torch.Tensor, seg: torch.Tensor,
                targets: torch.Tensor | None = None, feats: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """pixels (B, 3, S, S) (or ``feats``, see `prefix`); ids, seg, targets (B, T) -> logits
        (B, T, V), mean loss over targets.

        ``targets[b, t]`` is the token that should follow ``ids[b, t]`` (IGNORE where no loss)."""
        P = self.cfg.prefix_len
        pre, emb = self.prefix(pixels, feats), self.embed(ids)  # emb (B, T, D)
        x = torch.cat([pre.emb, emb], dim=1)  # (B, P+T, D)
        words = emb * (seg > 0)[..., None]  # padding contributes nothing
        bias = self.sequence_bias(words, segment_cumsum(words, seg), pre)  # (B, 2, P+T, P+T) or None
        hall = self.decoder(x, segment_positions(seg, P), attention_mask(seg, P), bias=bias)  # (B, P+T, D)
        h = hall[:, P:]  # (B, T, D)
        N = self.cfg.n_visual
        match = bias[:, 1, P:, 1:1 + N] if bias is not None else None  # (B, T, N) context vs tags
        logits = self.pointed(self.logits(h), h, hall[:, 1:1 + N], ids, match)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        if self.pointing is not None:
            loss = loss + self.point_loss(h, ids, targets)
        return logits, loss

    def point_loss(self, h: torch.Tensor, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """L1 between the regressed point at each trained <point> token and its bin centre."""
        at = (ids == _POINT) & (targets >= _X0) & (targets < _X0 + N_BINS)
        if not at.any():
            return h.sum() * 0.0
        x_bin = targets[at] - _X0
        nxt = torch.roll(targets, -1, dims=1)[at] - _Y0  # the y token follows the x token
        goal = torch.stack([x_bin, nxt.clamp(0, N_BINS - 1)], dim=-1).float().add(0.5) / N_BINS
        return F.l1_loss(self.pointing(h[at]), goal)

    # --- inference steps (used by generate.py) ---------------------------------------------
    def step(self, x: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor, cache: KVCache | None,
             bias: torch.Tensor | None = None) -> torch.Tensor:
        """Run embeddings x (B, T, D) at positions pos (B, T) -> final hidden states (B, T, D)."""
        return self.decoder(x, pos, mask, cache, bias=bias)

    def n_params(self, part: str | None = None) -> int:
        ps = self.parameters() if part is None else self.parts()[part]
        return sum(p.numel() for p in ps)


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)

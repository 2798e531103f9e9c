"""Training data sources: deterministic, position-addressed streams of image groups.

A *group* is one image and the (prompt, answer) pairs asked about it; a training row packs one
group (`processing.pack_row`). A `Source` yields groups from any position, so a resumed stage
continues where it stopped. Sources:

- `WorldSource`: the synthetic world's PixMo-like streams (``cap``, ``ask``, ``point``), whose
  examples of one scene are consecutive; position = scenes consumed.
- `ListSource`: a finite list of groups (e.g. benchmark-format examples built by the harness from
  the training seed space), cycled in a fresh seeded order every epoch.

``pointing=False`` drops every pair that mentions a point (the "no pointing" ablation).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .tokenizer import POINT

Pair = tuple[str, str]


@dataclass(frozen=True, eq=False)
class Group:
    image: np.ndarray  # (H, W, 3) uint8
    pairs: tuple[Pair, ...]
    kinds: tuple[str, ...] = ()  # one per pair, e.g. "ask/color" (for held-out breakdowns)
    key: str = ""  # identifies the image (for caching its encoder features); "" = never cached

    def kind(self, i: int) -> str:
        return self.kinds[i] if i < len(self.kinds) else ""


class Source(Protocol):
    name: str

    def groups(self, start: int) -> Iterator[Group]:
        """Groups from position ``start`` on (infinite)."""
        ...


def has_point(pair: Pair) -> bool:
    return POINT in pair[0] or POINT in pair[1]


def without_points(g: Group) -> Group | None:
    keep = [i for i, p in enumerate(g.pairs) if not has_point(p)]
    if not keep:
        return None
    return Group(g.image, tuple(g.pairs[i] for i in keep), tuple(g.kind(i) for i in keep), g.key)


class WorldSource:
    """One of the world's training streams, grouped by scene. ``per_scene``: examples drawn per scene
    (the stream's default when None; captions have one): more questions per image share one pass of
    the vision encoder, which costs about as much as the language model on a packed row.
    ``pool`` > 0: the stream cycles through that many scenes, with new questions on every pass."""

    def __init__(self, name: str, seed: int, pointing: bool = True, per_scene: int | None = None,
                 pool: int = 0):
        self.name, self.seed, self.pointing, self.per_scene, self.pool = name, seed, pointing, per_scene, pool

    def groups(self, start: int) -> Iterator[Group]:
        from .world import training

        kw = {} if self.per_scene is None else {"per_scene": self.per_scene}
        stream = training.STREAMS[self.name](self.seed, start=start, pool=self.pool, **kw)
        for _, exs in itertools.groupby(stream, key=lambda e: e.scene_id):
            items = list(exs)
            key = f"world/{self.name}/{items[0].scene_id}" if self.pool else ""
            g = Group(items[0].image, tuple((e.prompt, e.answer) for e in items), tuple(e.kind for e in items), key)
            g2 = g if self.pointing else without_points(g)
            if g2 is not None:
                yield g2


class ListSource:
    """A finite list of groups, reshuffled (seeded) every epoch."""

    def __init__(self, name: str, items: Sequence[Group], seed: int, pointing: bool = True):
        items = [g if g.key else Group(g.image, g.pairs, g.kinds, f"{name}/{i}") for i, g in enumerate(items)]
        kept = list(items) if pointing else [g2 for g in items if (g2 := without_points(g)) is not None]
        if not kept:
            raise ValueError(f"data source {name!r} is empty")
        self.name, self.items, self.seed = name, kept, seed

    def groups(self, start: int) -> Iterator[Group]:
        n = len(self.items)
        for i in itertools.count(start):
            epoch, j = divmod(i, n)
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
            yield self.items[int(order[j])]


class Mixture:
    """Draws each row's source by weight (seeded by stage and step) and tracks positions."""

    def __init__(self, sources: dict[str, Source], weights: dict[str, float], seed: int,
                 positions: dict[str, int] | None = None):
        missing = sorted(n for n, w in weights.items() if w > 0 and n not in sources)
        if missing:
            raise ValueError(f"mixture names unknown data source(s): {', '.join(missing)}")
        self.names = [n for n, w in weights.items() if w > 0]
        w = np.array([weights[n] for n in self.names], dtype=np.float64)
        self.probs = w / w.sum()
        self.seed = seed
        self.positions = {n: (positions or {}).get(n, 0) for n in self.names}
        self._its = {n: sources[n].groups(self.positions[n]) for n in self.names}

    def batch(self, step: int, size: int) -> list[Group]:
        rng = np.random.default_rng([self.seed, step])
        picks = rng.choice(len(self.names), size=size, p=self.probs)
        out = []
        for k in picks:
            name = self.names[int(k)]
            out.append(next(self._its[name]))
            self.positions[name] += 1
        return out

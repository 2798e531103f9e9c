"""Portable random numbers for the synthetic world: the base of its determinism.

Every scene, question and split is drawn from an `Rng` seeded by `derive(...)` of named parts, so
the same seed gives the same world on every machine and Python/numpy version: the generator is
SplitMix64 in plain Python integers (numpy's distribution methods and Python's ``random`` helpers
may change between versions; this cannot). Floats come from 53 random bits, exactly.

Seed spaces: training scenes have ids below ``EVAL_BASE`` (bit 62 clear), evaluation scenes at or
above it, so no evaluation image can ever be a training image (`train_scene_id`, `eval_scene_id`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

MASK64 = (1 << 64) - 1
EVAL_BASE = 1 << 62  # scene ids >= EVAL_BASE are evaluation scenes; training ids are below
_ID_MASK = EVAL_BASE - 1


def derive(*parts: object) -> int:
    """A 64-bit seed from named parts (ints and strings), stable across runs and platforms."""
    text = "\x1f".join(f"{type(p).__name__}:{p}" for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def train_scene_id(seed: int, *parts: object) -> int:
    """A training scene id: always below `EVAL_BASE`."""
    return derive("train", seed, *parts) & _ID_MASK


def eval_scene_id(seed: int, *parts: object) -> int:
    """An evaluation scene id: always at or above `EVAL_BASE`, so disjoint from training."""
    return EVAL_BASE | (derive("eval", seed, *parts) & _ID_MASK)


def is_eval_scene(scene_id: int) -> bool:
    return bool(scene_id & EVAL_BASE)


class Rng:
    """SplitMix64: small, fast enough in pure Python, and identical everywhere."""

    __slots__ = ("_state",)

    def __init__(self, seed: int):
        self._state = seed & MASK64

    def u64(self) -> int:
        self._state = (self._state + 0x9E3779B97F4A7C15) & MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def random(self) -> float:
        """Uniform in [0, 1)."""
        return (self.u64() >> 11) * (1.0 / (1 << 53))

    def below(self, n: int) -> int:
        """Uniform integer in [0, n), unbiased (rejection sampling)."""
        assert n > 0
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            v = self.u64()
            if v < limit:
                return v % n

    def randint(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi], both inclusive."""
        return lo + self.below(hi - lo + 1)

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.random()

    def chance(self, p: float) -> bool:
        return self.random() < p

    def choice(self, seq: Sequence[T]) -> T:
        return seq[self.below(len(seq))]

    def weighted(self, seq: Sequence[T], weights: Sequence[float]) -> T:
        total = float(sum(weights))
        r = self.random() * total
        acc = 0.0
        for item, w in zip(seq, weights):
            acc += w
            if r < acc:
                return item
        return seq[-1]

    def shuffled(self, seq: Sequence[T]) -> list[T]:
        out = list(seq)
        for i in range(len(out) - 1, 0, -1):
            j = self.below(i + 1)
            out[i], out[j] = out[j], out[i]
        return out

    def sample(self, seq: Sequence[T], k: int) -> list[T]:
        return self.shuffled(seq)[:k]

    def child(self, *parts: object) -> Rng:
        """An independent generator for a named sub-task (does not advance this one)."""
        return Rng(derive(self._state, *parts))

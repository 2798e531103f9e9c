"""What an aggregate metric is (the contract every task's `metrics()` returns; DESIGN §5).

A `Metric` reduces the *last axis* of its columns, so the same function computes the value on
``(n,)`` columns and a whole batch of bootstrap replicates on ``(B, n)`` columns at once
(see `molmo_eval.metrics.stats`). Columns are numpy arrays keyed by name: the float ``values`` of each
`SampleScore` (NaN = not applicable), its string ``fields``, and the sample's ``meta``. The usual
reducers (mean, ratio, F1) are in `molmo_eval.metrics.generic`.

Every metric declares its `Direction`: ``higher`` or ``lower`` is better, or ``none`` for a
descriptive number such as POPE's yes-ratio, which is reported but never gated on, never marked as
"best" in a table, and exported to lmms-eval without an arrow (``higher_is_better: null``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

Columns = Mapping[str, np.ndarray]


class Direction(str, enum.Enum):
    """Which way a metric improves."""

    HIGHER = "higher"  # accuracy, F1, ...
    LOWER = "lower"  # errors, distances (GQA's distribution)
    NONE = "none"  # descriptive: neither way is better (POPE's yes_ratio)

    @property
    def higher_is_better(self) -> bool | None:
        """lmms-eval's ``higher_is_better``: True, False, or None (no arrow)."""
        return {Direction.HIGHER: True, Direction.LOWER: False}.get(self)

    @classmethod
    def of(cls, higher_is_better: bool | None) -> Direction:
        """The direction of an lmms-eval style ``higher_is_better`` value (None: no direction)."""
        return cls.NONE if higher_is_better is None else cls.HIGHER if higher_is_better else cls.LOWER


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Columns], np.ndarray | float]
    ci: bool = True  # attach a bootstrap CI
    vectorized: bool = True  # fn accepts (B, n) columns; otherwise replicates are computed one by one
    cluster: str | None = None  # resample whole groups named by this column (e.g. circular groups)
    count: str | None = None  # n = non-NaN entries of this column (default: all rows)
    direction: Direction = Direction.HIGHER
    description: str = ""

    @property
    def higher_is_better(self) -> bool | None:
        return self.direction.higher_is_better

    def value(self, cols: Columns) -> float:
        return float(self.fn(cols))

    def n(self, cols: Columns) -> int:
        if self.count is None:
            return len(next(iter(cols.values()))) if cols else 0
        return int(np.count_nonzero(~np.isnan(cols[self.count])))

"""What an aggregate metric is (the contract every task's `metrics()` returns; DESIGN §5).

A `Metric` reduces the *last axis* of its columns, so the same function computes the value on
``(n,)`` columns and a whole batch of bootstrap replicates on ``(B, n)`` columns at once
(see `molmo_eval.metrics.stats`). Columns are numpy arrays keyed by name: the float ``values`` of each
`SampleScore` (NaN = not applicable), its string ``fields``, and the sample's ``meta``. The usual
reducers (mean, ratio, F1) are in `molmo_eval.metrics.generic`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[Columns], np.ndarray | float]
    ci: bool = True  # attach a bootstrap CI
    vectorized: bool = True  # fn accepts (B, n) columns; otherwise replicates are computed one by one
    cluster: str | None = None  # resample whole groups named by this column (e.g. circular groups)
    count: str | None = None  # n = non-NaN entries of this column (default: all rows)
    higher_is_better: bool = True
    description: str = ""

    def value(self, cols: Columns) -> float:
        return float(self.fn(cols))

    def n(self, cols: Columns) -> int:
        if self.count is None:
            return len(next(iter(cols.values()))) if cols else 0
        return int(np.count_nonzero(~np.isnan(cols[self.count])))

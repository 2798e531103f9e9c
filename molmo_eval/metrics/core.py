"""Aggregate metrics over per-sample score columns.

A `Metric` reduces the *last axis* of its columns, so the same function computes the value on
``(n,)`` columns and a whole batch of bootstrap replicates on ``(B, n)`` columns at once
(see `molmo_eval.stats`). Columns are numpy arrays keyed by name: the float ``values`` of each
`SampleScore` (NaN = not applicable), its string ``fields``, and the sample's ``meta``.
"""

from __future__ import annotations

import warnings
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


def nanmean(x: np.ndarray) -> np.ndarray | float:
    """Mean over the last axis ignoring NaN; NaN when nothing applies (no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=-1)


def safe_div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(den) > 0, np.asarray(num) / np.where(np.asarray(den) > 0, den, 1), np.nan)


def mean(name: str, column: str | None = None, *, description: str = "",
         higher_is_better: bool = True) -> Metric:
    """Mean of a per-sample column over the samples where it applies (non-NaN)."""
    col = column or name
    return Metric(name, lambda c: nanmean(c[col]), count=col, description=description,
                  higher_is_better=higher_is_better)


def ratio(name: str, num: str, den: str, *, description: str = "") -> Metric:
    """sum(num) / sum(den), e.g. precision = sum(tp) / sum(tp + fp)."""
    return Metric(name, lambda c: safe_div(np.nansum(c[num], axis=-1), np.nansum(c[den], axis=-1)),
                  description=description)


def f1(name: str, tp: str, fp: str, fn: str, *, description: str = "") -> Metric:
    """2PR / (P + R) from summed true/false positive and false negative counts."""

    def _f1(c: Columns) -> np.ndarray | float:
        t, p, n = (np.nansum(c[k], axis=-1) for k in (tp, fp, fn))
        return safe_div(2 * t, 2 * t + p + n)

    return Metric(name, _f1, description=description)

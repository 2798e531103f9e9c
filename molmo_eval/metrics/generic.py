"""Generic metrics over per-sample score columns: the mean of a column, a ratio of sums, F1 from
summed counts. Each returns a `molmo_eval.core.metric.Metric` whose function reduces the last axis,
so it computes one value and a batch of bootstrap replicates alike (`molmo_eval.metrics.stats`).
"""

from __future__ import annotations

import warnings

import numpy as np

from molmo_eval.core.metric import Columns, Direction, Metric


def nanmean(x: np.ndarray) -> np.ndarray | float:
    """Mean over the last axis ignoring NaN; NaN when nothing applies (no warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=-1)


def safe_div(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(den) > 0, np.asarray(num) / np.where(np.asarray(den) > 0, den, 1), np.nan)


def mean(name: str, column: str | None = None, *, description: str = "",
         direction: Direction = Direction.HIGHER) -> Metric:
    """Mean of a per-sample column over the samples where it applies (non-NaN)."""
    col = column or name
    return Metric(name, lambda c: nanmean(c[col]), count=col, description=description, direction=direction)


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

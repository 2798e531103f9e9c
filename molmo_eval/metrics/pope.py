"""POPE metrics (score and aggregate stages of the pope task), after POPE's ``evaluate.py``.

Per split, from the confusion counts with "yes" as the positive class: accuracy = (TP+TN)/N,
precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2PR/(P+R), yes_ratio = share of *predictions* that
are "yes" (not of labels). A ratio whose denominator is 0 (evaluate.py raises ZeroDivisionError) is NaN.

POPE's numbers are per split (random, popular, adversarial). When several splits are scored
together, each metric is the **mean over splits of the per-split value** (how papers report the
POPE average), not the value over the pooled rows; the per-split values are the ``split`` breakdown.
With one split the two coincide. Splits are told apart by the per-sample ``split_index`` column, so
the bootstrap regroups resampled rows with one ``bincount`` instead of string comparisons.

Per-sample columns: ``correct``, ``tp`` (yes predicted for a yes label), ``pred_yes``, ``label_yes``,
``split_index``; FP = pred_yes - TP, FN = label_yes - TP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from molmo_eval.core.metric import Columns, Direction, Metric
from molmo_eval.metrics.generic import nanmean, safe_div

Totals = Callable[[str], np.ndarray]  # column name -> per-split sums, shape (..., S)
Ratio = np.ndarray | float


def sample_values(label_yes: bool, pred_yes: bool, split_index: int) -> Mapping[str, float]:
    """One sample's columns (one shared, read-only mapping per distinct combination: a split of
    100k questions holds 12 of them, not 100k dicts)."""
    return _sample_values(bool(label_yes), bool(pred_yes), int(split_index))


@lru_cache(maxsize=256)
def _sample_values(label_yes: bool, pred_yes: bool, split_index: int) -> Mapping[str, float]:
    return MappingProxyType({"correct": float(pred_yes == label_yes), "tp": float(pred_yes and label_yes),
                             "pred_yes": float(pred_yes), "label_yes": float(label_yes),
                             "split_index": float(split_index)})


def _per_split_mean(formula: Callable[[Totals, np.ndarray], Ratio]) -> Callable[[Columns], np.ndarray | float]:
    """The mean over the splits present in the rows of ``formula(per-split sums, per-split counts)``,
    reducing the last axis of (n,) or (B, n) columns."""

    def fn(cols: Columns) -> np.ndarray | float:
        split = np.asarray(cols["split_index"])
        squeeze = split.ndim == 1
        split = np.atleast_2d(split)
        b, _ = split.shape
        if split.size == 0:
            return float("nan")
        s = int(split.max()) + 1
        flat = (np.arange(b)[:, None] * s + split.astype(np.int64)).ravel()
        count = np.bincount(flat, minlength=b * s).reshape(b, s).astype(float)

        def totals(name: str) -> np.ndarray:
            w = np.atleast_2d(np.asarray(cols[name], dtype=float)).ravel()
            return np.bincount(flat, weights=w, minlength=b * s).reshape(b, s)

        per_split = np.where(count > 0, formula(totals, count), np.nan)  # (B, S)
        out = np.asarray(nanmean(per_split))
        return float(out[0]) if squeeze else out

    return fn


def _accuracy(t: Totals, n: np.ndarray) -> Ratio:
    return safe_div(t("correct"), n)


def _precision(t: Totals, n: np.ndarray) -> Ratio:
    return safe_div(t("tp"), t("pred_yes"))


def _recall(t: Totals, n: np.ndarray) -> Ratio:
    return safe_div(t("tp"), t("label_yes"))


def _f1(t: Totals, n: np.ndarray) -> Ratio:
    tp = t("tp")
    p, r = safe_div(tp, t("pred_yes")), safe_div(tp, t("label_yes"))
    return safe_div(2 * p * r, p + r)  # evaluate.py: 2 * precision * recall / (precision + recall)


def _yes_ratio(t: Totals, n: np.ndarray) -> Ratio:
    return safe_div(t("pred_yes"), n)


def pope_metrics() -> tuple[Metric, ...]:
    """yes_ratio describes the model (POPE's papers compare it with 50%, the share of yes labels) and has
    no better direction: a model that stops answering "yes" to absent objects lowers it, one that
    stops missing present objects raises it."""
    up, none = Direction.HIGHER, Direction.NONE
    specs = (("accuracy", _accuracy, "(TP+TN)/N", up), ("precision", _precision, "TP/(TP+FP)", up),
             ("recall", _recall, "TP/(TP+FN)", up), ("f1", _f1, "2PR/(P+R)", up),
             ("yes_ratio", _yes_ratio, "share of predictions that are yes (no better direction)", none))
    return tuple(Metric(name, _per_split_mean(fn), direction=d,
                        description=f"{desc}; mean over splits when several run")
                 for name, fn, desc, d in specs)

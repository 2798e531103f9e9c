"""Metric definitions: generic reducers here, official benchmark scorers in submodules."""

from molmo_eval.metrics.core import Columns, Metric, f1, mean, nanmean, ratio, safe_div

__all__ = ["Columns", "Metric", "f1", "mean", "nanmean", "ratio", "safe_div"]

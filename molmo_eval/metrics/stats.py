"""Aggregation of per-sample scores into metrics with seeded bootstrap confidence intervals.

Sits after `Task.score`/`Task.finalize` in the pipeline and before the run record. The bootstrap
is the percentile bootstrap over samples (or over whole clusters, for metrics that name one),
seeded from (run seed, task, metric, breakdown key) so reruns agree to the last digit and each
interval does not depend on which other metrics were computed.

Breakdowns group the rows once (`group_rows`: a code per row, one stable sort) and hand each group's
metrics a lazy view that gathers only the columns they read. Bootstrap replicates are drawn and
evaluated a block of rows at a time, which bounds the memory of a large task to a few tens of MB;
the intervals do not depend on the block size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from molmo_eval.core.metric import Columns, Metric
from molmo_eval.core.types import MetricValue, Sample, SampleScore

N_BOOT = 1000
ALPHA = 0.05
_BLOCK_ELEMS = 1 << 19  # bootstrap indices drawn, and a metric evaluated, this many cells at a time


def columns(samples: Sequence[Sample], scores: Sequence[SampleScore]) -> dict[str, np.ndarray]:
    """Column arrays from per-sample values (float, NaN where absent), fields and meta (object)."""
    assert len(samples) == len(scores)
    n = len(scores)
    cols: dict[str, np.ndarray] = {}
    value_keys = sorted({k for s in scores for k in s.values})
    for k in value_keys:
        cols[k] = np.fromiter((s.values.get(k, np.nan) for s in scores), dtype=np.float64, count=n)
    for k in sorted({k for s in scores for k in s.fields}):
        cols[k] = np.array([s.fields.get(k, "") for s in scores], dtype=object)
    for k in sorted({k for s in samples for k in s.meta}):
        if k not in cols:
            cols[k] = np.array([_cat(s.meta.get(k)) for s in samples], dtype=object)
    cols.setdefault("split", np.array([s.split for s in samples], dtype=object))
    return cols


def _cat(v: Any) -> str:
    return "" if v is None else str(v)


def seed_for(*parts: object) -> int:
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little")


class _Gathered(Mapping[str, np.ndarray]):
    """The rows ``idx`` of every column (a bootstrap resample, a breakdown's group), each gathered on
    first use: a metric pays only for the columns it reads."""

    def __init__(self, cols: Columns, idx: np.ndarray):
        self._cols, self._idx = cols, idx
        self._done: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._done:
            self._done[key] = self._cols[key][self._idx]
        return self._done[key]

    def __iter__(self):  # type: ignore[override]
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)


def bootstrap_ci(metric: Metric, cols: Columns, seed: int, n_boot: int = N_BOOT,
                 alpha: float = ALPHA) -> tuple[float | None, float | None]:
    n = len(next(iter(cols.values()))) if cols else 0
    if n == 0 or not metric.ci or n_boot <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    if metric.cluster is not None:
        reps = _cluster_replicates(metric, cols, rng, n_boot)
    elif metric.vectorized:
        reps = np.empty(n_boot)
        # a metric reduces each row alone, and the generator hands out the same indices however they
        # are split into calls (tested), so a block of rows at a time bounds the memory
        block = max(1, _BLOCK_ELEMS // n)
        for start in range(0, n_boot, block):
            b = min(block, n_boot - start)
            idx = rng.integers(0, n, size=(b, n))
            reps[start:start + b] = np.asarray(metric.fn(_Gathered(cols, idx)), dtype=float)
    else:
        reps = np.array([float(metric.fn(_Gathered(cols, idx)))
                         for idx in (rng.integers(0, n, size=n) for _ in range(n_boot))])
    reps = reps[~np.isnan(reps)]
    if reps.size == 0:
        return None, None
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _cluster_replicates(metric: Metric, cols: Columns, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    assert metric.cluster is not None
    keys = cols[metric.cluster]
    _, inverse = np.unique(keys.astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(inverse.max() + 2))
    members = [order[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
    reps = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(members), size=len(members))
        idx = np.concatenate([members[i] for i in pick])
        reps[b] = float(metric.fn(_Gathered(cols, idx)))
    return reps


def aggregate(metrics: Sequence[Metric], cols: Columns, *, seed: int, label: str = "",
              n_boot: int = N_BOOT) -> dict[str, MetricValue]:
    out: dict[str, MetricValue] = {}
    for m in metrics:
        n = m.n(cols)
        value = m.value(cols) if n else float("nan")
        lo, hi = bootstrap_ci(m, cols, seed_for(seed, label, m.name), n_boot) if n else (None, None)
        out[m.name] = MetricValue(value, lo, hi, n)
    return out


def group_rows(keys: np.ndarray) -> dict[Any, np.ndarray]:
    """Row indices (ascending) of each distinct value of a categorical column, in order of first
    appearance: the rows ``keys == value`` selects, found in one pass and one stable sort."""
    values = keys.tolist()
    codes: dict[Any, int] = {k: c for c, k in enumerate(dict.fromkeys(values))}  # first appearance
    inverse = np.fromiter(map(codes.__getitem__, values), dtype=np.intp, count=len(keys))
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(inverse, minlength=len(codes)))))
    return {k: order[bounds[c]:bounds[c + 1]] for k, c in codes.items()}


def breakdown(metrics: Sequence[Metric], cols: Columns, group: str, *, seed: int, label: str = "",
              n_boot: int = N_BOOT) -> dict[str, dict[str, MetricValue]]:
    """Every metric over the rows of each value of the categorical column ``group``."""
    if group not in cols:
        return {}
    rows = group_rows(cols[group])
    out: dict[str, dict[str, MetricValue]] = {}
    for key in sorted(rows, key=str):
        if key == "":
            continue
        sub = _Gathered(cols, rows[key])
        out[str(key)] = aggregate(metrics, sub, seed=seed, label=f"{label}/{group}={key}", n_boot=n_boot)
    return out


def summarize(metrics: Sequence[Metric], cols: Mapping[str, np.ndarray], breakdown_keys: Sequence[str],
              *, seed: int, label: str, n_boot: int = N_BOOT, split_only: Sequence[str] = (),
              group_ci: bool = True) -> tuple[dict[str, MetricValue], dict[str, dict[str, dict[str, MetricValue]]]]:
    """Overall metrics and every breakdown (``split`` first when several splits ran); ``group_ci``
    False leaves the breakdowns without intervals (for output that shows only the overall ones)."""
    overall = aggregate(metrics, cols, seed=seed, label=label, n_boot=n_boot)
    groups: dict[str, dict[str, dict[str, MetricValue]]] = {}
    keys = list(breakdown_keys)
    if "split" in cols and len(set(cols["split"].tolist())) > 1 and "split" not in keys:
        keys.insert(0, "split")
    per_group = [m for m in metrics if m.name not in split_only]
    for g in keys:
        groups[g] = breakdown(per_group, cols, g, seed=seed, label=label, n_boot=n_boot if group_ci else 0)
    return overall, groups


def columns_from_lines(lines: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The same columns as `columns`, rebuilt from ``samples.jsonl`` lines (null -> NaN)."""
    n = len(lines)
    cols: dict[str, np.ndarray] = {}
    for k in sorted({k for ln in lines for k in (ln.get("scores") or {})}):
        vals = ((ln.get("scores") or {}).get(k) for ln in lines)
        cols[k] = np.fromiter((np.nan if v is None else float(v) for v in vals), dtype=np.float64, count=n)
    for k in sorted({k for ln in lines for k in (ln.get("fields") or {})}):
        cols[k] = np.array([(ln.get("fields") or {}).get(k, "") for ln in lines], dtype=object)
    for k in sorted({k for ln in lines for k in (ln.get("meta") or {})}):
        if k not in cols:
            cols[k] = np.array([_cat((ln.get("meta") or {}).get(k)) for ln in lines], dtype=object)
    cols.setdefault("split", np.array([ln.get("split", "") for ln in lines], dtype=object))
    return cols

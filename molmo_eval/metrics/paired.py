"""Paired significance tests on per-sample scores: the statistics under the regression gate.

Sits after the records (two runs' score columns, aligned row by row on the sample uid) and before
`molmo_eval.gate.verdicts`, which turns the tests into verdicts. `paired_tests` picks, per metric, two-sided:

- **exact McNemar** when the metric is the plain mean of a 0/1 column: only discordant pairs carry
  information, and under "no change" the gains (0 -> 1) among the ``losses + gains`` discordant
  pairs are Binomial(losses + gains, 1/2);
- a seeded **paired bootstrap** for every other metric: the same resampled rows are drawn for both
  runs and the task's own ``Metric.fn`` is recomputed on each, so ratios, F1 and clustered metrics
  are tested as they are defined. The p-value is the two-sided normal tail of the difference over
  its bootstrap standard error (smooth in ``n_boot``, so a multiple-testing correction is not capped
  by ``1 / n_boot``); the percentile interval of the difference is reported beside it. A metric whose
  p is clearly far from any decision after `FIRST_STAGE` replicates stops there (`_settled`).

Costs: a metric fn reduces the last axis (`molmo_eval.core.metric`), so a chunk of replicates is one
``(B, n)`` gather per column the fn reads. When the metric is the plain mean of a non-binary column
(VQA soft accuracy, IoU, per-example F1), a replicate's difference depends only on how often each
distinct per-row difference was drawn, so the replicates are drawn as multinomial counts over those
distinct values: the same bootstrap distribution at ``O(B x distinct)`` instead of ``O(B x n)``.
Clustered metrics (``Metric.cluster``) resample whole clusters, stratified by cluster size so every
replicate keeps ``n`` rows and stays rectangular; each drawn cluster gets its own label, so a
cluster drawn twice counts twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from molmo_eval.core.metric import Columns, Metric
from molmo_eval.metrics.generic import nanmean
from molmo_eval.metrics.stats import seed_for

N_BOOT = 1000
_CHUNK_ELEMS = 4_000_000  # replicate cells gathered at once per column


@dataclass(frozen=True)
class PairedTest:
    """One paired comparison of a metric between a baseline and a current run (same rows)."""

    method: str  # "mcnemar" | "bootstrap" | "cluster-bootstrap"
    base: float  # the metric on the baseline rows
    current: float  # the metric on the current rows
    p_value: float  # two-sided; NaN when the test could not be computed
    ci_low: float | None  # interval of current - base (Wald for McNemar, percentile for bootstrap)
    ci_high: float | None
    n: int  # paired rows (McNemar: rows where the column applies)
    losses: int | None = None  # McNemar: rows that went 1 -> 0
    gains: int | None = None  # McNemar: rows that went 0 -> 1
    n_boot: int = 0

    @property
    def delta(self) -> float:
        return self.current - self.base


# --- McNemar ---------------------------------------------------------------------------------

def mcnemar_p(losses: int, gains: int) -> float:
    """Exact two-sided McNemar p: ``min(1, 2 * P[X <= min(losses, gains)])``, X ~ Bin(losses + gains, 1/2)."""
    from scipy.stats import binom

    k = losses + gains
    if k == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(losses, gains), k, 0.5)))


def mcnemar(base: np.ndarray, current: np.ndarray, alpha: float = 0.05) -> PairedTest:
    """Exact McNemar on two aligned 0/1 columns (NaN = not applicable, the same rows in both)."""
    from scipy.stats import norm

    ok = ~np.isnan(base)
    b, c = base[ok] > 0.5, current[ok] > 0.5
    n = int(ok.sum())
    losses, gains = int(np.count_nonzero(b & ~c)), int(np.count_nonzero(~b & c))
    if n == 0:
        return PairedTest("mcnemar", float("nan"), float("nan"), float("nan"), None, None, 0, 0, 0)
    diff = (gains - losses) / n
    se = np.sqrt(max(losses + gains - (gains - losses) ** 2 / n, 0.0)) / n
    z = float(norm.isf(alpha / 2))
    return PairedTest("mcnemar", float(b.mean()), float(c.mean()), mcnemar_p(losses, gains),
                      float(diff - z * se), float(diff + z * se), n, losses, gains)


def mean_column(metric: Metric, base: Columns, current: Columns) -> str | None:
    """The column whose plain mean ``metric`` is on both runs, else None.

    The metric must name its column (``count``), not cluster, and reproduce ``nanmean`` of that
    column on both runs, with NaN (not applicable) on the same rows in both.
    """
    col = metric.count
    if col is None or metric.cluster is not None or col not in base or col not in current:
        return None
    b, c = base[col], current[col]
    if b.dtype.kind != "f" or c.dtype.kind != "f":
        return None
    nb = np.isnan(b)
    if not np.array_equal(nb, np.isnan(c)) or nb.all():
        return None
    for cols, x in ((base, b), (current, c)):
        if not _close(metric.value(cols), float(nanmean(x))):
            return None
    return col


def binary_mean_column(metric: Metric, base: Columns, current: Columns) -> str | None:
    """`mean_column` when that column holds only 0, 1 and NaN on both runs (the McNemar case)."""
    col = mean_column(metric, base, current)
    return col if col is not None and _binary_pair(base[col], current[col]) else None


def _binary_pair(b: np.ndarray, c: np.ndarray) -> bool:
    ok = ~np.isnan(b)  # the same rows in both (checked by mean_column)
    return _is_binary(b[ok]) and _is_binary(c[ok])


def _is_binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0.0) | (x == 1.0)))


def _close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12)) or (np.isnan(a) and np.isnan(b))


# --- paired bootstrap ------------------------------------------------------------------------

def paired_tests(metrics: Sequence[Metric], base: Columns, current: Columns, *, seed: int,
                 n_boot: int = N_BOOT, alpha: float = 0.05) -> list[PairedTest]:
    """One test per metric, in order: McNemar, the mean bootstrap or the Metric.fn bootstrap.

    Each result depends only on the seed, the rows and the metric itself, never on which other
    metrics were tested alongside it."""
    out: dict[str, PairedTest] = {}
    generic = []
    for m in metrics:
        col = mean_column(m, base, current)
        if col is None:
            generic.append(m)
        elif _binary_pair(base[col], current[col]):
            out[m.name] = mcnemar(base[col], current[col], alpha)
        else:
            out[m.name] = mean_bootstrap(base[col], current[col], seed=seed_for(seed, "mean", m.name),
                                         n_boot=n_boot, alpha=alpha)
    out.update(zip((m.name for m in generic), paired_bootstrap(generic, base, current, seed=seed,
                                                               n_boot=n_boot, alpha=alpha), strict=True))
    return [out[m.name] for m in metrics]


_MAX_DISTINCT = 512  # distinct per-row differences up to which replicates are drawn as counts


def mean_bootstrap(base: np.ndarray, current: np.ndarray, *, seed: int, n_boot: int = N_BOOT,
                   alpha: float = 0.05) -> PairedTest:
    """Paired bootstrap of the difference of two column means (NaN on the same rows in both).

    Resampling n rows with replacement draws each distinct per-row difference a Multinomial(n,
    frequencies) number of times, and a replicate's mean difference depends on those counts only;
    with few distinct values (0/0.3/0.6/0.9/1 accuracies) the counts are drawn directly."""
    ok = ~np.isnan(base)
    d = current[ok] - base[ok]
    n = int(d.size)
    b, c = (float(np.mean(x[ok])) if n else float("nan") for x in (base, current))
    if n == 0:
        return PairedTest("bootstrap", b, c, float("nan"), None, None, 0)
    rng = np.random.default_rng(seed)
    values, counts = np.unique(d, return_counts=True)
    if values.size <= _MAX_DISTINCT:
        reps = rng.multinomial(n, counts / n, size=n_boot) @ values / n
    else:
        reps = np.empty(n_boot)
        for start, size in _chunks(0, n_boot, n):
            reps[start:start + size] = np.take(d, _draw_rows(rng, size, n)).mean(axis=-1)
    return _from_replicates("bootstrap", b, c, reps, n, alpha)


class _Resampled(Mapping[str, np.ndarray]):
    """Columns seen through a ``(B, n)`` index matrix; each column is gathered once, on first read."""

    def __init__(self, cols: Columns, idx: np.ndarray, fixed: Mapping[str, np.ndarray] | None = None):
        self._cols, self._idx, self._fixed = cols, idx, dict(fixed or {})
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key in self._fixed:
            return self._fixed[key]
        got = self._cache.get(key)
        if got is None:
            got = self._cache[key] = np.take(self._cols[key], self._idx)
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)


def _compact(cols: Columns) -> dict[str, np.ndarray]:
    """float32 copies of float columns for resampling: half the memory traffic; replicate values
    move by ~1e-7 relative, far below any bootstrap standard error."""
    return {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in cols.items()}


def _chunks(lo: int, hi: int, n: int) -> Iterator[tuple[int, int]]:
    """(start, size) chunks of replicates covering ``[lo, hi)``, at most ~_CHUNK_ELEMS cells each."""
    step = max(1, _CHUNK_ELEMS // max(n, 1))
    for start in range(lo, hi, step):
        yield start, min(step, hi - start)


def _replicates(metric: Metric, b: _Resampled, c: _Resampled, idx: np.ndarray, base: Columns, cur: Columns,
                fixed: Mapping[str, np.ndarray]) -> np.ndarray:
    """current - base of ``metric`` on each row of ``idx`` (one replicate per row)."""
    if metric.vectorized:
        return np.asarray(metric.fn(c), dtype=float) - np.asarray(metric.fn(b), dtype=float)
    out = np.empty(len(idx))
    for i, row in enumerate(idx):
        out[i] = float(metric.fn(_Resampled(cur, row, fixed))) - float(metric.fn(_Resampled(base, row, fixed)))
    return out


FIRST_STAGE = 200  # replicates after which a clearly settled metric stops


def _settled(reps: np.ndarray, delta: float, alpha: float) -> bool:
    """Whether more replicates cannot matter: p far above alpha even before any multiple-testing
    correction (> 4 alpha), or so small (< 1e-9) that no correction could lift it above alpha. After
    200 replicates the standard error is known to about 5%, which moves z by about 5%."""
    from scipy.stats import norm

    reps = reps[np.isfinite(reps)]
    if reps.size < 2 or not np.isfinite(delta):
        return False
    se = float(np.std(reps, ddof=1))
    if se == 0.0:
        return True
    p = 2.0 * norm.sf(abs(delta) / se)
    return p > min(1.0, 4 * alpha) or p < 1e-9


def _resample(metrics: Sequence[Metric], base: Columns, cur: Columns, n: int, n_boot: int, alpha: float,
              draw: Callable[[int], np.ndarray], fixed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Replicate differences per metric (NaN where not drawn). ``draw(size)`` gives a ``(size, n)``
    index matrix; ``fixed`` columns (n,) replace resampled ones. In two stages: metrics settled after
    `FIRST_STAGE` replicates stop; the stream of draws is the same whichever metrics continue."""
    reps = {m.name: np.full(n_boot, np.nan) for m in metrics}
    if n == 0:
        return reps
    deltas = {m.name: m.value(cur) - m.value(base) for m in metrics}
    b32, c32 = _compact(base), _compact(cur)
    active = list(metrics)
    first = min(n_boot, FIRST_STAGE)
    for lo, hi in ((0, first), (first, n_boot)):
        if not active:
            break
        for start, size in _chunks(lo, hi, n):
            idx = draw(size)
            wide = {k: np.broadcast_to(v, (size, n)) for k, v in fixed.items()}
            bv, cv = _Resampled(b32, idx, wide), _Resampled(c32, idx, wide)  # shared: one gather per column
            for m in active:
                reps[m.name][start:start + size] = _replicates(m, bv, cv, idx, b32, c32, fixed)
        active = [m for m in active if not _settled(reps[m.name][:hi], deltas[m.name], alpha)]
    return reps


def _summarize(method: str, metric: Metric, base: Columns, cur: Columns, reps: np.ndarray,
               n: int, alpha: float) -> PairedTest:
    return _from_replicates(method, metric.value(base), metric.value(cur), reps, n, alpha)


def _from_replicates(method: str, b: float, c: float, reps: np.ndarray, n: int, alpha: float) -> PairedTest:
    """p from the bootstrap standard error of the difference; percentile interval beside it."""
    from scipy.stats import norm

    delta = c - b
    reps = reps[np.isfinite(reps)]
    n_boot = int(reps.size)
    if n_boot < 2 or not np.isfinite(delta):
        return PairedTest(method, b, c, float("nan"), None, None, n, n_boot=n_boot)
    se = float(np.std(reps, ddof=1))
    if se == 0.0:  # every replicate equal: no sampling variation (identical runs, or a constant shift)
        p = 1.0 if delta == 0.0 else 0.0
    else:
        p = float(2.0 * norm.sf(abs(delta) / se))
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return PairedTest(method, b, c, p, float(lo), float(hi), n, n_boot=n_boot)


def paired_bootstrap(metrics: Sequence[Metric], base: Columns, current: Columns, *, seed: int,
                     n_boot: int = N_BOOT, alpha: float = 0.05) -> list[PairedTest]:
    """Paired bootstrap of ``Metric.fn`` for each of ``metrics`` (in order) on aligned columns.

    Unclustered metrics share one stream of row resamples seeded by ``seed``; a clustered metric
    draws its own, seeded by (``seed``, metric name). So each result depends only on the seed, the
    rows and the metric itself, never on which other metrics were tested alongside it.
    """
    n = len(next(iter(base.values()))) if base else 0
    if not metrics:
        return []
    if _identical(base, current):  # every replicate difference would be exactly 0: skip resampling
        return [_summarize("cluster-bootstrap" if m.cluster else "bootstrap", m, base, current,
                           np.zeros(n_boot), n, alpha) for m in metrics]
    out: dict[str, PairedTest] = {}
    plain = [m for m in metrics if m.cluster is None]
    if plain:
        rng = np.random.default_rng(seed)
        reps = _resample(plain, base, current, n, n_boot, alpha, lambda size: _draw_rows(rng, size, n), {})
        out.update({m.name: _summarize("bootstrap", m, base, current, reps[m.name], n, alpha) for m in plain})
    for m in metrics:
        if m.cluster is not None:
            out[m.name] = _clustered(m, base, current, seed_for(seed, "cluster", m.name), n_boot, alpha, n)
    return [out[m.name] for m in metrics]


def _draw_rows(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """(size, n) row indices drawn with replacement: generated as int32 (cheaper), gathered as intp
    (numpy converts any other index type on every gather)."""
    if n >= 2**31:
        return rng.integers(0, n, size=(size, n), dtype=np.int64).astype(np.intp, copy=False)
    return rng.integers(0, n, size=(size, n), dtype=np.int32).astype(np.intp)


def _identical(base: Columns, cur: Columns) -> bool:
    if base.keys() != cur.keys():
        return False
    for k, b in base.items():
        c = cur[k]
        same = np.array_equal(b, c, equal_nan=True) if b.dtype.kind == "f" else np.array_equal(b, c)
        if not same:
            return False
    return True


@dataclass(frozen=True)
class _Strata:
    members: tuple[np.ndarray, ...]  # per cluster size s: (k_s, s) row indices of its clusters
    labels: np.ndarray  # (n,) one label per drawn slot, in replicate row order


def _strata(keys: np.ndarray) -> _Strata:
    _, inverse = np.unique(keys.astype(str), return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    sizes = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    members, labels = [], []
    for s in np.unique(sizes):
        first = starts[sizes == s]  # (k_s,)
        members.append(order[first[:, None] + np.arange(s)])
        labels.append(np.repeat([f"{s}:{j}" for j in range(len(first))], s))
    return _Strata(tuple(members), np.concatenate(labels).astype(object))


def _clustered(metric: Metric, base: Columns, cur: Columns, seed: int, n_boot: int, alpha: float,
               n: int) -> PairedTest:
    assert metric.cluster is not None
    strata = _strata(np.asarray(base[metric.cluster])) if n else _Strata((), np.empty(0, dtype=object))
    rng = np.random.default_rng(seed)

    def draw(size: int) -> np.ndarray:
        return np.concatenate([mem[rng.integers(0, len(mem), size=(size, len(mem)))].reshape(size, -1)
                               for mem in strata.members], axis=1)

    reps = _resample([metric], base, cur, n, n_boot, alpha, draw, {metric.cluster: strata.labels})
    return _summarize("cluster-bootstrap", metric, base, cur, reps[metric.name], n, alpha)


# --- multiple comparisons --------------------------------------------------------------------

def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and do not count toward m)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out.tolist()
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out.tolist()

"""Deltas and paired significance tests of every row of a table against its baseline row.

The tests are the regression gate's (`molmo_eval.metrics.paired`: exact McNemar for 0/1 scores,
paired bootstrap otherwise) on the per-sample scores of both rows, with the task plugin's own
metric definitions (`molmo_eval.core.registry.plugin_metrics`), Holm-adjusted over every distinct
comparison in the table and seeded, so a re-render gives the same marks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from molmo_eval.core.registry import plugin_metrics
from molmo_eval.metrics.generic import mean
from molmo_eval.metrics.paired import holm, paired_tests
from molmo_eval.metrics.stats import columns_from_lines, seed_for
from molmo_eval.report.inputs import SampleStore
from molmo_eval.report.model import Column, Entry, Value

SAME_RUN = "same run"  # two rows that share one evaluation (grid cells with the same checkpoint)


def compare_to_baseline(
    entries: Sequence[Entry],
    columns: Sequence[Column],
    cells: list[list[Value]],
    base_i: int,
    store: SampleStore,
    seed: int,
    n_boot: int,
    correction: str,
) -> tuple[list[list[Value]], int, list[str]]:
    """Deltas and paired tests of every row against the baseline row, Holm-adjusted over every
    distinct comparison (rows that share one evaluation, like grid cells with the same checkpoint,
    are one comparison, not several)."""
    base = entries[base_i]
    tests: dict[tuple[str, int], tuple[float | None, str]] = {}  # (row data, column) -> (p, method)
    for j, c in enumerate(columns):
        for i, e in enumerate(entries):
            key = (e.data_key, j)
            if (
                i != base_i
                and key not in tests
                and cells[i][j].mv is not None
                and cells[base_i][j].mv is not None
            ):
                tests[key] = paired_p(base, e, c, store, seed, n_boot)
    keys = [k for k, (p, _) in tests.items() if p is not None]
    ps = [float(tests[k][0]) for k in keys]  # type: ignore[arg-type]
    adj = dict(zip(keys, holm(ps) if correction == "holm" else ps))
    out = [list(r) for r in cells]
    for i, e in enumerate(entries):
        for j in range(len(columns)):
            v, b = cells[i][j], cells[base_i][j]
            if i == base_i or v.mv is None or b.mv is None:
                continue
            p = adj.get((e.data_key, j))
            out[i][j] = replace(
                v,
                delta=v.mv.value - b.mv.value,
                p=None if p is None or math.isnan(p) else float(p),
                test=tests[(e.data_key, j)][1],
            )
    notes = sorted(
        {
            f"{columns[j].title}: no paired test for some rows ({why})"
            for (_, j), (p, why) in tests.items()
            if p is None and why != SAME_RUN
        }
    )
    return out, len(keys), notes


def paired_p(
    base: Entry, cur: Entry, column: Column, store: SampleStore, seed: int, n_boot: int
) -> tuple[float | None, str]:
    """Two-sided p of the paired test of ``column`` between two rows, or (None, why not)."""
    if base.data_key == cur.data_key:
        return None, SAME_RUN
    b_lines, c_lines = store.lines(base, column.task), store.lines(cur, column.task)
    if b_lines is None or c_lines is None:
        return None, "no per-sample scores"
    b_uids = [ln["uid"] for ln in b_lines]
    pos = {ln["uid"]: i for i, ln in enumerate(c_lines)}
    if len(pos) != len(c_lines) or set(b_uids) != set(pos) or len(set(b_uids)) != len(b_uids):
        return None, "different samples"
    c_lines = [c_lines[pos[u]] for u in b_uids]
    b_cols, c_cols = columns_from_lines(b_lines), columns_from_lines(c_lines)
    metric = _metric(column, base.record.tasks[column.task], b_cols)
    if metric is None:
        return None, "no per-sample definition of the metric"
    try:
        (test,) = paired_tests(
            [metric], b_cols, c_cols, seed=seed_for(seed, "report", column.task, column.metric), n_boot=n_boot
        )
    except Exception as e:  # a metric that cannot be recomputed from the columns: untested, never a crash
        return None, f"test failed: {type(e).__name__}"
    return (None, "undefined") if math.isnan(test.p_value) else (float(test.p_value), test.method)


def _metric(column: Column, result: Any, cols: Mapping[str, np.ndarray]) -> Any:
    plugin, _ = plugin_metrics(column.task, result)
    if plugin is not None and column.metric in plugin:
        return plugin[column.metric]
    if column.metric in cols and cols[column.metric].dtype.kind == "f":
        return mean(column.metric)
    return None

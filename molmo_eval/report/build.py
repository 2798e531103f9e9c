"""Report inputs -> the `Table`: one column per benchmark metric (each task's primary metric, all of
them, or a list), rows as given or, for an ablation, in the grid's axis order; deltas and
significance marks against a baseline row (`molmo_eval.report.significance`); the best value per
column and each row's average. Deterministic: a fixed row and column order and seeded tests, so a
committed report can be checked against its records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from molmo_eval.core.errors import ConfigError
from molmo_eval.core.metric import Direction
from molmo_eval.core.registry import plugin_metrics
from molmo_eval.core.types import MetricValue
from molmo_eval.report.inputs import SampleStore
from molmo_eval.report.model import (
    LAYOUTS,
    METRIC_TITLES,
    TASK_ORDER,
    TASK_TITLES,
    Column,
    Entry,
    Inputs,
    Row,
    Table,
    Value,
    find_row,
)
from molmo_eval.report.significance import compare_to_baseline


def choose_columns(entries: Sequence[Entry], metrics: str = "primary") -> tuple[Column, ...]:
    """``primary`` (each task's primary metric), ``all``, or a list ``task:metric,metric,...``."""
    tasks: list[str] = []
    for e in entries:
        tasks += [t for t in e.record.tasks if t not in tasks]
    tasks.sort(key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t))
    wanted = [m.strip() for m in metrics.split(",") if m.strip()] if metrics not in ("primary", "all") else []
    cols: list[Column] = []
    problems = []
    for t in tasks:
        results = [e.record.tasks[t] for e in entries if t in e.record.tasks]
        names: list[str] = []
        for tr in results:
            names += [m for m in tr.metrics if m not in names]
        primary = results[0].primary_metric or names[0]
        if metrics == "primary":
            chosen = [primary]
        elif metrics == "all":
            chosen = names
        else:
            chosen = [m.split(":", 1)[1] for m in wanted if m.split(":", 1)[0] == t and ":" in m]
            chosen = [m for m in chosen if m in names]
            chosen += [m for m in wanted if ":" not in m and m in names and m not in chosen]
        cols += [Column(t, m, "", _direction(t, m, results[0])) for m in chosen]
    for m in wanted:
        t, sep, name = m.partition(":")
        if sep and not any(c.task == t and c.metric == name for c in cols):
            problems.append(f"--metrics {m}: no task {t!r} with metric {name!r} in the inputs")
        if not sep and not any(c.metric == m for c in cols):
            problems.append(f"--metrics {m}: no input has a metric {m!r}")
    if problems:
        raise ConfigError(problems)
    per_task = {t: sum(c.task == t for c in cols) for t in tasks}
    return tuple(replace(c, title=_title(c, per_task[c.task] > 1)) for c in cols)


def _title(c: Column, with_metric: bool) -> str:
    base = TASK_TITLES.get(c.task, c.task)
    return f"{base} {METRIC_TITLES.get(c.metric, c.metric)}" if with_metric else base


def _direction(task: str, metric: str, result: Any) -> Direction:
    try:
        plugin, _ = plugin_metrics(task, result)
    except Exception:  # an unreadable plugin: assume the usual direction
        plugin = None
    m = plugin.get(metric) if plugin is not None else None
    return Direction.HIGHER if m is None else m.direction


def order_entries(inputs: Inputs, layout: str) -> list[Entry]:
    """Ablation rows in the grid's axis order (first axis slowest); model rows as given."""
    entries = list(inputs.entries)
    if layout != "ablation":
        return entries
    if not inputs.axes:
        raise ConfigError("--layout ablation needs a grid record (molmo-eval ablate writes one)")
    order = inputs.axis_values

    def key(e: Entry) -> tuple[int, ...]:
        return tuple(order[a].index(e.coords[a]) if e.coords.get(a) in order[a] else 99 for a in inputs.axes)

    return sorted(entries, key=key)


def build_table(
    inputs: Inputs,
    *,
    layout: str | None = None,
    metrics: str = "primary",
    baseline: str | None = None,
    ci: bool = False,
    digits: int = 1,
    seed: int = 0,
    n_boot: int = 1000,
    correction: str = "holm",
    average: bool | None = None,
    store: SampleStore | None = None,
) -> Table:
    layout = layout or ("ablation" if inputs.axes else "models")
    if layout not in LAYOUTS:
        raise ConfigError(f"--layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    entries = order_entries(inputs, layout)
    columns = choose_columns(entries, metrics)
    base_i = find_row(entries, baseline) if baseline else None
    store = store or SampleStore()
    cells = [[_value(e, c) for c in columns] for e in entries]
    notes: list[str] = list(inputs.notes)
    n_tests = 0
    if base_i is not None:
        cells, n_tests, test_notes = compare_to_baseline(
            entries, columns, cells, base_i, store, seed, n_boot, correction
        )
        notes += test_notes
    cells = _mark_best(columns, cells, digits)
    with_avg = (len(columns) >= 2 and metrics == "primary") if average is None else average
    avgs = [
        _average(row, cells[base_i] if base_i not in (None, i) else None) if with_avg else None
        for i, row in enumerate(cells)
    ]
    rows = tuple(
        Row(e, tuple(vals), avg, i == base_i) for i, (e, vals, avg) in enumerate(zip(entries, cells, avgs))
    )
    if with_avg:
        rows = _mark_best_average(rows, digits)
    return Table(
        columns,
        rows,
        layout,
        inputs.axes if layout == "ablation" else (),
        entries[base_i].label if base_i is not None else None,
        ci,
        digits,
        n_tests,
        tuple(notes),
        with_avg,
    )


NA_WITHOUT_POINTING = ("pointqa",)  # tasks a model without point tokens cannot answer at all


def _value(e: Entry, c: Column) -> Value:
    if e.coords.get("pointing") == "off" and c.task in NA_WITHOUT_POINTING:
        # like Molmo's ablation: PointQA is N/A without pointing; RefCOCO is scored (plain-text points)
        return Value(None, na=True)
    tr = e.record.tasks.get(c.task)
    return Value(tr.metrics.get(c.metric) if tr is not None else None)


def _average(values: Sequence[Value], base: Sequence[Value] | None) -> Value | None:
    got = [v.mv.value for v in values if v.mv is not None and not math.isnan(v.mv.value)]
    if len(got) != len(values) or not got:
        return None
    avg = float(np.mean(got))
    delta = None
    if base is not None:
        b = _average(base, None)
        delta = None if b is None or b.mv is None else avg - b.mv.value
    return Value(MetricValue(avg, None, None, 0), delta)


def _mark_best(columns: Sequence[Column], cells: list[list[Value]], digits: int) -> list[list[Value]]:
    out = [list(r) for r in cells]
    for j, c in enumerate(columns):
        shown = [_rounded(r[j].mv, digits) for r in cells]
        ok = [s for s in shown if s is not None]
        if len(ok) < 2 or c.direction is Direction.NONE:  # a descriptive number has no best
            continue
        best = max(ok) if c.direction is Direction.HIGHER else min(ok)
        for i, s in enumerate(shown):
            if s == best:
                out[i][j] = replace(out[i][j], best=True)
    return out


def _mark_best_average(rows: tuple[Row, ...], digits: int) -> tuple[Row, ...]:
    shown = [_rounded(r.average.mv, digits) if r.average is not None else None for r in rows]
    ok = [s for s in shown if s is not None]
    if len(ok) < 2:
        return rows
    best = max(ok)
    return tuple(
        replace(r, average=replace(r.average, best=True)) if s == best and r.average is not None else r
        for r, s in zip(rows, shown)
    )


def _rounded(mv: MetricValue | None, digits: int) -> float | None:
    if mv is None or math.isnan(mv.value):
        return None
    return round(100 * mv.value, digits)

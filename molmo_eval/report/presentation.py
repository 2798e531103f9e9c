"""How a table reads, shared by every renderer: numbers as text (percent for rates, CIs, deltas with
significance marks), the header and row heads, the caption that says how to read the table, the rows
breakdowns show and the breakdown tables themselves. Pure functions of the table model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from molmo_eval.core.types import MetricValue
from molmo_eval.report.model import AXIS_TITLES, THROUGHPUT, Column, Row, Table, Value

MISSING = "–"  # no value: the task was not run for this row
UNDEFINED = "NaN"  # the metric is undefined (e.g. F1 without a positive prediction): never shown as 0


def fmt(v: float | None, rate: bool, digits: int) -> str:
    if v is None:
        return MISSING
    if math.isnan(v):
        return UNDEFINED
    return f"{100 * v:.{digits}f}" if rate else f"{v:.{digits + 2}g}"


def fmt_delta(d: float | None, rate: bool, digits: int) -> str:
    if d is None or math.isnan(d):
        return ""
    return f"{100 * d:+.{digits}f}" if rate else f"{d:+.{digits + 2}g}"


def axis_text(axis: str, value: str) -> str:
    """How an axis value reads in a table: data fractions as percentages of the full schedule."""
    if axis == "data":
        try:
            if value.endswith("img"):
                return f"{int(value[:-3]):,} img"
            return f"{100 * float(value):g}%"
        except ValueError:
            return value
    return value


def header(table: Table) -> list[str]:
    first = [AXIS_TITLES.get(a, a) for a in table.axes] if table.layout == "ablation" else ["Model"]
    return first + [c.title for c in table.columns] + (["Avg."] if table.with_average else [])


def row_heads(table: Table, row: Row) -> list[str]:
    """The row's first cells: its axis values (ablation) or its label, the baseline row marked."""
    heads = (
        [axis_text(a, row.entry.coords.get(a, "")) for a in table.axes]
        if table.layout == "ablation"
        else [row.entry.label]
    )
    i = -1 if table.layout == "ablation" else 0
    if row.is_baseline and "baseline" not in heads[i].lower():  # never "Baseline (baseline)"
        heads[i] += " (baseline)"
    return heads


@dataclass(frozen=True)
class CellText:
    value: str
    ci: str
    delta: str  # "+1.2" or ""
    mark: str
    best: bool


def cell_text(table: Table, v: Value | None, column: Column | None = None) -> CellText:
    if v is not None and v.na:
        return CellText("N/A", "", "", "", False)
    if v is None or v.mv is None:
        return CellText(MISSING, "", "", "", False)
    if column is not None and column.task == THROUGHPUT:  # tokens/s: whole numbers, no CI
        delta = "" if v.delta is None else f"{v.delta:+.0f}"
        return CellText(f"{v.mv.value:.0f}", "", delta, "", v.best)
    rate, d = table.rate, table.digits
    ci = ""
    if table.ci and v.mv.ci_low is not None and v.mv.ci_high is not None:
        ci = f"{fmt(v.mv.ci_low, rate, d)}–{fmt(v.mv.ci_high, rate, d)}"
    return CellText(fmt(v.mv.value, rate, d), ci, fmt_delta(v.delta, rate, d), v.mark, v.best)


def row_cells(table: Table, row: Row) -> list[CellText]:
    out = [cell_text(table, v, c) for c, v in zip(table.columns, row.values)]
    if table.with_average:
        out.append(cell_text(replace(table, ci=False), row.average))
    return out


def caption(table: Table) -> list[str]:
    """Sentences that say how to read the table (shared by every format)."""
    metric_list = ", ".join(f"{c.title}: {c.metric}" for c in table.columns if c.task != THROUGHPUT)
    unit = "percent" if table.rate else "metric units"
    lines = [f"Values in {unit} ({metric_list}); best per column in bold."]
    if any(c.task == THROUGHPUT for c in table.columns):
        lines.append("Tok/s: generated tokens per second of generation, measured in the row's own "
                     "evaluation run (– when not measured: an older record, or every output came from "
                     "the response cache).")
    values = [v for row in table.rows for v in row.values]
    if any(v.mv is not None and math.isnan(v.mv.value) for v in values):
        lines.append(f"{UNDEFINED}: the metric is undefined for that row (e.g. F1 without a positive "
                     f"prediction), which is not 0; {MISSING}: not evaluated.")
    if table.with_average:
        lines.append("Avg. is the unweighted mean of the columns.")
    if any(v.na for row in table.rows for v in row.values):
        lines.append("N/A: PointQA for a model trained without point tokens (as in Molmo's "
                     "ablation); its row has no average.")
    if table.ci:
        lines.append("Ranges are 95% bootstrap confidence intervals over samples.")
    if table.baseline is not None:
        corr = f"Holm-adjusted over {table.n_tests} comparisons" if table.n_tests else "no tests"
        lines.append(
            f"Differences are against {table.baseline} (points); * p < 0.05, ** p < 0.01 in a paired "
            f"test on per-sample scores (exact McNemar for 0/1 scores, paired bootstrap otherwise), "
            f"{corr}."
        )
    return lines + list(table.notes)


def highlight_rows(table: Table, limit: int = 6) -> list[Row]:
    """The rows breakdowns and bar plots show: all of them when few; for a grid, the cells at the
    largest data size (and first seed), i.e. stage settings x pointing."""
    rows = list(table.rows)
    if len(rows) <= limit or table.layout != "ablation":
        return rows[:limit]
    keep = rows
    for axis in ("data", "seed"):
        if axis in table.axes:
            values = [r.entry.coords.get(axis) for r in keep]
            target = values[-1] if axis == "data" else values[0]
            keep = [r for r in keep if r.entry.coords.get(axis) == target]
    return keep[:limit]


def short_label(table: Table, row: Row, skip: Sequence[str] = ()) -> str:
    if table.layout != "ablation":
        return row.entry.label
    parts = []
    for a in table.axes:
        if a in skip:
            continue
        v = axis_text(a, row.entry.coords.get(a, ""))
        parts.append(
            f"stages {v}"
            if a == "stages"
            else f"pointing {v}"
            if a == "pointing"
            else f"{v} data"
            if a == "data"
            else f"{a} {v}"
        )
    return ", ".join(parts)


@dataclass(frozen=True)
class Breakdown:
    """One task's metric per key of one breakdown group, for each shown row."""

    column: Column
    group: str
    keys: tuple[str, ...]
    values: tuple[tuple[MetricValue | None, ...], ...]  # [key][row]

    def n(self, i: int) -> int:
        return max((mv.n for mv in self.values[i] if mv is not None), default=0)


def breakdown_tables(table: Table, rows: Sequence[Row], max_keys: int = 40) -> list[Breakdown]:
    """Per column and breakdown group (answer type, category, split ...) of the shown rows."""
    out = []
    for c in table.columns:
        results = [r.entry.record.tasks.get(c.task) for r in rows]
        groups: list[str] = []
        for tr in results:
            groups += [g for g in (tr.breakdowns if tr else {}) if g not in groups]
        for g in groups:
            keys: list[str] = []
            for tr in results:
                keys += [k for k in (tr.breakdowns.get(g, {}) if tr else {}) if k not in keys]
            if not keys or len(keys) > max_keys:
                continue
            values = tuple(
                tuple((tr.breakdowns.get(g, {}).get(k, {}).get(c.metric) if tr else None) for tr in results)
                for k in keys
            )
            out.append(Breakdown(c, g, tuple(keys), values))
    return out


def constant_axes(table: Table, rows: Sequence[Row]) -> list[str]:
    return [a for a in table.axes if len({r.entry.coords.get(a) for r in rows}) <= 1]

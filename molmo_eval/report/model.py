"""The table model, at the bottom of the report room: rows (`Entry`: a run or a grid cell, with its
record), columns (`Column`: a task's metric), values (`Value`: the metric with its delta, adjusted p
and best-in-column mark) and the `Table` that every renderer draws; the names tables show (task,
metric and axis titles); `find_row`, a row by the name a user gives it. Plain frozen values: the
renderers, plots and the sample viewer import this module and never each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from molmo_eval.core.errors import ConfigError
from molmo_eval.core.metric import Direction
from molmo_eval.core.types import MetricValue, RunRecord

TASK_ORDER = ("vqav2", "textvqa", "gqa", "pope", "mmbench", "refcoco", "refcoco+", "refcocog", "pointqa")
TASK_TITLES = {
    "vqav2": "VQAv2",
    "textvqa": "TextVQA",
    "gqa": "GQA",
    "pope": "POPE",
    "mmbench": "MMBench",
    "refcoco": "RefCOCO",
    "refcoco+": "RefCOCO+",
    "refcocog": "RefCOCOg",
    "pointqa": "PointQA",
}
METRIC_TITLES = {
    "accuracy": "Acc",
    "f1": "F1",
    "point_in_box": "Pt-in-box",
    "point_in_mask": "Pt-in-mask",
    "acc@0.5": "Acc@0.5",
    "circular_accuracy": "CircularEval",
    "vanilla_accuracy": "Vanilla",
    "precision": "Prec",
    "recall": "Rec",
    "yes_ratio": "Yes-ratio",
    "consistency": "Consistency",
    "count_accuracy": "Count acc",
}
AXIS_TITLES = {
    "stages": "Stages",
    "data": "Data",
    "pointing": "Pointing",
    "captions": "Captions",
    "seed": "Seed",
}
LAYOUTS = ("models", "ablation")
ALPHA = 0.05
THROUGHPUT = "throughput"  # the task name of a generation-speed column (tokens/s, not a rate)


@dataclass(frozen=True)
class Entry:
    """One row of a table: a run, or a cell of a grid."""

    label: str
    record: RunRecord
    run_dir: Path | None  # where samples.jsonl lives (None: record only)
    coords: Mapping[str, str] = field(default_factory=dict)  # grid axis -> value ({} for plain runs)

    @property
    def data_key(self) -> str:
        """Rows with the same run directory share samples (cells that share an evaluation)."""
        return str(self.run_dir.resolve()) if self.run_dir is not None else self.label


@dataclass(frozen=True)
class Inputs:
    entries: tuple[Entry, ...]
    axes: tuple[str, ...] = ()  # grid axes shown as columns (ablation layout)
    axis_values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # the spec's order
    notes: tuple[str, ...] = ()  # e.g. a grid that is still running


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    title: str
    direction: Direction = Direction.HIGHER  # NONE: no "best" mark in this column


@dataclass(frozen=True)
class Value:
    mv: MetricValue | None
    delta: float | None = None  # against the baseline row, in the metric's units
    p: float | None = None  # Holm-adjusted p of the paired test (None: no test)
    test: str = ""  # "mcnemar", "bootstrap", ... or why there is none
    best: bool = False
    na: bool = False  # not applicable: a pointing benchmark for a model trained without pointing

    @property
    def mark(self) -> str:
        if self.p is None:
            return ""
        return "**" if self.p < 0.01 else "*" if self.p < ALPHA else ""


@dataclass(frozen=True)
class Row:
    entry: Entry
    values: tuple[Value, ...]
    average: Value | None = None
    is_baseline: bool = False


@dataclass(frozen=True)
class Table:
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    layout: str
    axes: tuple[str, ...] = ()
    baseline: str | None = None
    ci: bool = False
    digits: int = 1
    n_tests: int = 0
    notes: tuple[str, ...] = ()
    with_average: bool = False

    @property
    def rate(self) -> bool:
        """Every metric column holds fractions in [0, 1] (rendered as percent); speed columns aside."""
        vals = [
            v.mv.value
            for r in self.rows
            for c, v in zip(self.columns, r.values)
            if c.task != THROUGHPUT and v.mv is not None and not math.isnan(v.mv.value)
        ]
        return all(0.0 <= x <= 1.0 for x in vals)


@dataclass(frozen=True)
class Paper:
    """The paper's ablation tables of a grid (title, table) and the findings computed from them."""

    tables: tuple[tuple[str, Table], ...]
    findings: tuple[str, ...]
    notes: tuple[str, ...] = ()


def find_row(entries: Sequence[Entry], name: str) -> int:
    """The row called ``name``: its label, its run folder's name, its run id, or its grid
    coordinates written as ``axis=value`` pairs (any order, separated by spaces or commas)."""
    want = {p.strip() for p in name.replace(",", " ").split() if "=" in p}
    hits = []
    for i, e in enumerate(entries):
        names = {e.label, e.record.run_id}
        if e.run_dir is not None and not e.coords:
            names.add(e.run_dir.name)
        if name in names or (want and want == {f"{a}={v}" for a, v in e.coords.items() if f"{a}=" in name}):
            hits.append(i)
    if len(hits) != 1:
        labels = ", ".join(repr(e.label) for e in entries[:6]) + (" ..." if len(entries) > 6 else "")
        why = "matches no row" if not hits else f"matches {len(hits)} rows"
        raise ConfigError(f"--baseline {name!r} {why} (rows: {labels})")
    return hits[0]

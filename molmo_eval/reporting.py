"""Comparison reports: run records and grid records -> paper tables.

    inputs (run directories, grid folders) -> rows (`Entry`)
      -> `Table`: one column per benchmark metric, percentages, CIs, best per column, deltas against
         a baseline with a significance mark from a paired test on per-sample scores
      -> markdown / LaTeX (booktabs) / CSV / terminal (rich) / self-contained HTML (plots, samples)

Reads records only (``results.json``, ``samples.jsonl``, ``grid.json``); never runs a model. The
paired tests are the regression gate's (`molmo_eval.metrics.paired`: exact McNemar for 0/1 scores, paired
bootstrap otherwise) with the task plugin's own metric definitions (`molmo_eval.core.registry.plugin_metrics`),
Holm-adjusted over every comparison in the table. Output is deterministic: no timestamps, a fixed
row and column order, seeded tests, so a committed report can be checked against its records.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from molmo_eval.core.errors import ConfigError, DataError
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
AXIS_TITLES = {"stages": "Stages", "data": "Data", "pointing": "Pointing", "seed": "Seed"}
LAYOUTS = ("models", "ablation")
FORMATS = ("md", "latex", "html", "csv", "terminal")
ALPHA = 0.05
SAME_RUN = "same run"  # two rows that share one evaluation (grid cells with the same checkpoint)


# --- inputs ------------------------------------------------------------------------------------


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


def load_inputs(paths: Sequence[str | Path]) -> Inputs:
    """Run directories / results.json files / grid folders, each optionally ``LABEL=PATH``."""
    from molmo_eval.grid import is_grid, read_grid
    from molmo_eval.run.records import read_run

    entries: list[Entry] = []
    axes: tuple[str, ...] = ()
    values: dict[str, tuple[str, ...]] = {}
    n_grids = 0
    notes: list[str] = []
    for raw in paths:
        label, path = _split_label(str(raw))
        if not path.exists():
            raise DataError("no such run or grid", path=path)
        if is_grid(path):
            g = read_grid(path)
            n_grids += 1
            if not g.complete:
                notes.append(
                    f"The grid {label or path.name} is not complete: {len(g.cells)} of "
                    f"{len(g.spec.cells())} cells."
                )
            axes = g.spec.varying
            values = {a: tuple(g.spec.axis_values(a)) for a in axes}
            for c in g.cells:
                coords = {a: c.coords[a] for a in axes}
                text = " ".join(f"{a}={v}" for a, v in coords.items())
                entries.append(Entry(f"{label}: {text}" if label else text, c.record, c.run_dir, coords))
        else:
            run = read_run(path)
            entries.append(Entry(label or _run_name(run.path), run.record, run.path))
    if not entries:
        raise ConfigError("report: give at least one run directory or grid folder")
    return Inputs(
        tuple(_unique(entries)), axes if n_grids == 1 else (), values if n_grids == 1 else {}, tuple(notes)
    )


def _split_label(text: str) -> tuple[str, Path]:
    if "=" in text and not Path(text).exists():
        label, _, path = text.partition("=")
        return label.strip(), Path(path).expanduser()
    return "", Path(text).expanduser()


def _run_name(path: Path) -> str:
    return path.resolve().name


def _unique(entries: list[Entry]) -> list[Entry]:
    seen: dict[str, int] = {}
    out = []
    for e in entries:
        seen[e.label] = seen.get(e.label, 0) + 1
        out.append(e if seen[e.label] == 1 else replace(e, label=f"{e.label} #{seen[e.label]}"))
    return out


def read_sample_lines(run_dir: Path) -> Iterator[dict[str, Any]]:
    """``samples.jsonl`` (or ``samples.jsonl.gz``, for committed records) of a run directory."""
    from molmo_eval.run.records import SAMPLES, iter_samples

    gz = run_dir / (SAMPLES + ".gz")
    if not (run_dir / SAMPLES).is_file() and gz.is_file():
        with gzip.open(gz, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
        return
    yield from iter_samples(run_dir)


def has_samples(run_dir: Path | None) -> bool:
    from molmo_eval.run.records import SAMPLES

    return run_dir is not None and ((run_dir / SAMPLES).is_file() or (run_dir / (SAMPLES + ".gz")).is_file())


class SampleStore:
    """Per-sample lines of each run, read once and shared by the tests and the viewer."""

    def __init__(self) -> None:
        self._lines: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def lines(self, entry: Entry, task: str) -> list[dict[str, Any]] | None:
        if not has_samples(entry.run_dir):
            return None
        key = entry.data_key
        if key not in self._lines:
            by_task: dict[str, list[dict[str, Any]]] = {}
            assert entry.run_dir is not None
            for line in read_sample_lines(entry.run_dir):
                by_task.setdefault(str(line.get("task")), []).append(line)
            self._lines[key] = by_task
        return self._lines[key].get(task)


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    task: str
    metric: str
    title: str
    higher_is_better: bool = True


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
        vals = [
            v.mv.value for r in self.rows for v in r.values if v.mv is not None and not math.isnan(v.mv.value)
        ]
        return all(0.0 <= x <= 1.0 for x in vals)


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
        cols += [Column(t, m, "", _higher_is_better(t, m, results[0])) for m in chosen]
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


def _higher_is_better(task: str, metric: str, result: Any) -> bool:
    from molmo_eval.core.registry import plugin_metrics

    try:
        plugin, _ = plugin_metrics(task, result)
    except Exception:  # an unreadable plugin: assume the usual direction
        plugin = None
    m = plugin.get(metric) if plugin is not None else None
    return True if m is None else bool(m.higher_is_better)


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
        cells, n_tests, test_notes = _compare(
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


def _value(e: Entry, c: Column) -> Value:
    if e.coords.get("pointing") == "off" and _answers_with_points(c.task):
        return Value(None, na=True)  # no point tokens: like Molmo's ablation, N/A rather than a number
    tr = e.record.tasks.get(c.task)
    return Value(tr.metrics.get(c.metric) if tr is not None else None)


def _answers_with_points(task: str) -> bool:
    from molmo_eval.core import registry
    from molmo_eval.core.errors import MolmoEvalError
    from molmo_eval.core.types import AnswerKind

    try:
        return registry.get_task(task).answer_kind is AnswerKind.POINTS
    except MolmoEvalError:
        return False


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
        if len(ok) < 2:
            continue
        best = max(ok) if c.higher_is_better else min(ok)
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


# --- significance against the baseline ---------------------------------------------------------


def _compare(
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
    from molmo_eval.metrics.paired import holm

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
    from molmo_eval.metrics.paired import paired_tests
    from molmo_eval.metrics.stats import columns_from_lines, seed_for

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
    from molmo_eval.core.registry import plugin_metrics
    from molmo_eval.metrics.generic import mean

    plugin, _ = plugin_metrics(column.task, result)
    if plugin is not None and column.metric in plugin:
        return plugin[column.metric]
    if column.metric in cols and cols[column.metric].dtype.kind == "f":
        return mean(column.metric)
    return None


# --- reports/ ----------------------------------------------------------------------------------

MANIFEST = "reports.toml"
EXTENSIONS = {"md": ".md", "latex": ".tex", "csv": ".csv", "html": ".html"}


@dataclass(frozen=True)
class ReportSpec:
    name: str
    title: str
    inputs: tuple[str, ...]
    layout: str | None = None
    baseline: str | None = None
    metrics: str = "primary"
    ci: bool = False
    formats: tuple[str, ...] = ("md", "latex", "csv", "html")
    plots: bool = True
    samples: str | None = None
    n: int = 3
    view: str | None = None


def read_manifest(root: Path) -> list[ReportSpec]:
    import tomllib

    path = root / MANIFEST
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no report manifest", path=path, expected="a [[report]] table per report") from None
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"not valid TOML ({e})", path=path) from None
    known = {f for f in ReportSpec.__dataclass_fields__}
    out, problems = [], []
    for i, r in enumerate(data.get("report", [])):
        unknown = sorted(set(r) - known)
        if unknown or "name" not in r or "inputs" not in r:
            problems.append(
                f"{path}: report {i + 1}: needs name and inputs"
                + (f"; unknown keys {', '.join(unknown)}" if unknown else "")
            )
            continue
        bad = [f for f in r.get("formats", ()) if f not in EXTENSIONS]
        if bad:
            problems.append(f"{path}: report {r['name']}: unknown format(s) {', '.join(bad)}")
            continue
        r = {
            **r,
            "inputs": tuple(r["inputs"]),
            "formats": tuple(r.get("formats", ReportSpec.formats)),
            "title": r.get("title", r["name"]),
        }
        out.append(ReportSpec(**r))
    if problems:
        raise ConfigError(problems)
    return out


def regenerate(root: Path, out: Path | None = None) -> list[Path]:
    """Render every report of ``root/reports.toml`` from the records it names (paths relative to
    ``root``) into ``out`` (default ``root``): tables, plots and an index ``README.md``."""
    from molmo_eval.report_formats import markdown_document, render, render_markdown

    out = out or root
    written: list[Path] = []
    index = [
        "# Reports",
        "",
        "<!-- Generated by `molmo-eval report --regenerate` from the records under records/; "
        "do not edit. -->",
        "",
        "Regenerate every file here from the committed records with",
        "",
        "```bash",
        "molmo-eval report --regenerate reports",
        "```",
        "",
    ]
    for spec in read_manifest(root):
        inputs = load_inputs([_resolve_input(p, root) for p in spec.inputs])
        store = SampleStore()
        table = build_table(
            inputs, layout=spec.layout, metrics=spec.metrics, baseline=spec.baseline, ci=spec.ci, store=store
        )
        plot_files: list[str] = []
        if spec.plots:
            from molmo_eval import plots

            for p in plots.save_plots(table, out / "plots", prefix=spec.name):
                written.append(p)
                if p.suffix == ".png":
                    plot_files.append(p.relative_to(out).as_posix())
        for f in spec.formats:
            target = out / f"{spec.name}{EXTENSIONS[f]}"
            text = (
                markdown_document(table, spec.title, plots=[Path(p).as_posix() for p in plot_files])
                if f == "md"
                else render(
                    table,
                    f,
                    title=spec.title,
                    store=store,
                    plots=spec.plots,
                    samples=spec.samples,
                    n=spec.n,
                    view=spec.view,
                )
            )
            _write(target, text)
            written.append(target)
        index += [f"## {spec.title}", ""]
        index += [f"[{f}]({spec.name}{EXTENSIONS[f]})" for f in spec.formats] + [""]
        index += [render_markdown(table)]
        index += [f"![{Path(p).stem}]({p})" for p in plot_files[:3]] + [""]
    _write(out / "README.md", "\n".join(index).rstrip("\n") + "\n")
    return written + [out / "README.md"]


def _resolve_input(text: str, root: Path) -> str:
    """A manifest input (``PATH`` or ``LABEL=PATH``, PATH relative to the reports folder)."""
    label, sep, path = text.partition("=")
    if sep and not (root / text).exists():
        return f"{label}={root / path}"
    return str(root / text)


def _write(path: Path, text: str) -> None:
    from molmo_eval.run.records import atomic_write

    atomic_write(path, text)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - thin alias of the CLI flag
    import sys

    from molmo_eval.cli import main as cli_main

    args = list(sys.argv[1:] if argv is None else argv)
    return cli_main(["report", "--regenerate", *(args or ["reports"])])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Figures of a report table (matplotlib, PNG and PDF), drawn from records only.

    Table (molmo_eval.report.model) -> figures:
      ablation: metric vs data size per stage setting (pointing on solid, off dashed), per-stage bars,
                pointing on/off bars, per-category breakdowns
      models:   per-benchmark bars, per-category breakdowns
    -> PNG (HTML reports embed these) and PDF (papers) under a folder

matplotlib is imported inside the functions (the ``plots`` extra), always with the Agg backend and
no pyplot state. Files carry no dates or software versions, so re-rendering on one machine gives the
same bytes; error bars are the 95% bootstrap intervals of the records.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import MissingDependency
from molmo_eval.report.model import METRIC_TITLES, TASK_TITLES
from molmo_eval.report.presentation import axis_text, short_label

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
PNG_META = {"Software": None}
PDF_META = {"Creator": None, "Producer": None, "CreationDate": None}
FONT = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "svg.hashsalt": "molmo-eval",
}
MAX_KEYS = 24  # breakdown groups with more keys are left to the tables


def matplotlib_agg(purpose: str = "plots in reports") -> Any:
    """matplotlib with the file-only Agg backend, or one line naming the pip install that fixes it."""
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise MissingDependency("matplotlib", None, purpose) from None
    matplotlib.use("Agg", force=True)
    return matplotlib


def _figure(w: float, h: float) -> Any:
    matplotlib_agg()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figures(table: Any) -> list[tuple[str, Any]]:
    """(name, Figure) pairs for a table: every plot that its rows support."""
    mpl = matplotlib_agg()
    with mpl.rc_context(FONT):
        out: list[tuple[str, Any]] = []
        if table.layout == "ablation":
            axes = table.axes
            if "data" in axes and len(_values(table, "data")) > 1:
                out.append(("data-scaling", data_scaling(table)))
            if "stages" in axes and len(_values(table, "stages")) > 1:
                out.append(("stages", stage_bars(table)))
            if "pointing" in axes and len(_values(table, "pointing")) > 1:
                out.append(("pointing", pointing_bars(table)))
            if "captions" in axes and len(_values(table, "captions")) > 1:
                out.append(("captions", caption_bars(table)))
        elif len(table.rows) > 1 or len(table.columns) > 1:
            out.append(("benchmarks", benchmark_bars(table)))
        for task, group in breakdown_groups(table):
            out.append((f"breakdown-{_slug(task)}-{_slug(group)}", breakdown(table, task, group)))
        return out


def save_plots(table: Any, out_dir: Path, prefix: str = "report") -> list[Path]:
    """Every figure of ``table`` as ``out_dir/<prefix>-<name>.png`` and ``.pdf``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures(table):
        for ext in ("png", "pdf"):
            path = out_dir / f"{prefix}-{name}.{ext}"
            save(fig, path)
            written.append(path)
    return written


def save(fig: Any, path: Path) -> None:
    if path.suffix == ".pdf":
        fig.savefig(path, metadata=PDF_META)
    else:
        fig.savefig(path, dpi=150, metadata=PNG_META)


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata=PNG_META)
    return buf.getvalue()


# --- selection helpers -------------------------------------------------------------------------


def _values(table: Any, axis: str) -> list[str]:
    return list(dict.fromkeys(r.entry.coords.get(axis) for r in table.rows))


def _rows(table: Any, **want: str) -> list[Any]:
    """Rows whose coordinates match ``want`` (seed fixed to the first value when it varies)."""
    if "seed" in table.axes and "seed" not in want:
        want["seed"] = _values(table, "seed")[0]
    return [r for r in table.rows if all(r.entry.coords.get(a) == v for a, v in want.items())]


def _pct(mv: Any) -> tuple[float, float, float]:
    """(value, lower error, upper error) in percent; NaN when missing."""
    if mv is None or mv.value is None or math.isnan(mv.value):
        return math.nan, 0.0, 0.0
    v = 100 * mv.value
    lo = v - 100 * mv.ci_low if mv.ci_low is not None else 0.0
    hi = 100 * mv.ci_high - v if mv.ci_high is not None else 0.0
    return v, max(lo, 0.0), max(hi, 0.0)


def value_limits(values: Sequence[float], rate: bool) -> tuple[float, float]:
    """The value axis of a panel: 0-100 for rates; otherwise 0 to the largest finite value with a
    margin, and 0-1 when every value is 0 or undefined (matplotlib would draw -0.05 to 0.05)."""
    if rate:
        return (0, 100)
    finite = [v for v in values if not math.isnan(v)]
    top = max(finite, default=0.0)
    return (0, 1.0) if top <= 0 else (0, 1.1 * top)


def _mark_undefined(ax: Any, positions: Sequence[float], vals: Sequence[float], horizontal: bool,
                    na: Sequence[bool] = ()) -> None:
    """An undefined value (NaN) is written as "NaN" where its bar would start: never a 0-height bar;
    a value that does not apply (``na``: PointQA without point tokens) as "N/A"."""
    na = list(na) or [False] * len(vals)
    for pos, v, not_applicable in zip(positions, vals, na):
        if math.isnan(v):
            kw = {"fontsize": 7, "color": "#57606a" if not_applicable else "#cf222e",
                  "ha": "left" if horizontal else "center"}
            where = (1, pos) if horizontal else (pos, 1)
            ax.text(*where, "N/A" if not_applicable else "NaN", va="center" if horizontal else "bottom", **kw)


def _wrap(text: str, width: int = 14) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _metric_title(metric: str) -> str:
    return METRIC_TITLES.get(metric, metric.replace("_", " "))


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in s).strip("-").lower()


def _data_x(values: Sequence[str]) -> tuple[list[float], list[str], str]:
    """Numeric positions and labels for data-size values (fractions as % of the schedule)."""
    xs = [float(v[:-3]) if v.endswith("img") else 100 * float(v) for v in values]
    counts = all(v.endswith("img") for v in values)
    return (
        xs,
        [axis_text("data", v) for v in values],
        ("training images" if counts else "training data (% of the full schedule)"),
    )


# --- the figures -------------------------------------------------------------------------------


def data_scaling(table: Any) -> Any:
    """One panel per benchmark: the metric against data size, a line per stage setting; pointing
    on solid, off dashed; overlapping series are nudged sideways so each stays visible; captions at
    the recipe's (clean) when they vary."""
    cols = table.columns
    ncols = min(4, len(cols))
    nrows = math.ceil(len(cols) / ncols)
    fig = _figure(max(5.2, 3.1 * ncols), 2.6 * nrows + (0.7 if len(cols) < nrows * ncols else 1.2))
    grid = fig.subplots(nrows, ncols, squeeze=False)
    data_vals = _values(table, "data")
    xs, xlabels, xtitle = _data_x(data_vals)
    stages = _values(table, "stages")
    pointing = _values(table, "pointing") if "pointing" in table.axes else [None]
    series = [(s, p) for s in stages for p in pointing]
    for j, col in enumerate(cols):
        ax = grid[j // ncols][j % ncols]
        for s, p in series:
            want = {"stages": s} | ({"pointing": p} if p is not None else {})
            want |= _recipe(table, "captions", "clean")
            by_data = {r.entry.coords.get("data"): r for r in _rows(table, **want)}
            pts = [(x, _pct(by_data[d].values[j].mv)) for x, d in zip(xs, data_vals) if d in by_data]
            if not pts:
                continue
            # pointing on left, off right, stage settings spread a little: identical series stay visible
            nudge = (
                1 + 0.035 * ((p == "off") - (p == "on")) + 0.012 * (stages.index(s) - (len(stages) - 1) / 2)
            )
            x = [a * nudge for a, _ in pts]
            y = [b[0] for _, b in pts]
            err = [[b[1] for _, b in pts], [b[2] for _, b in pts]]
            ax.errorbar(
                x,
                y,
                yerr=err,
                color=PALETTE[stages.index(s) % len(PALETTE)],
                linestyle="--" if p == "off" else "-",
                marker="s" if p == "off" else "o",
                markersize=4,
                capsize=2.5,
                linewidth=1.4,
                label=_series_label(s, p),
            )
        ax.set_xscale("log")
        ax.set_xticks(xs, xlabels)
        ax.minorticks_off()
        ax.set_title(f"{col.title} ({_metric_title(col.metric)})", fontsize=10)
        ax.grid(True, alpha=0.3)
        if j % ncols == 0:
            ax.set_ylabel("score (%)")
        if j // ncols == nrows - 1 or j + ncols >= len(cols):
            ax.set_xlabel(xtitle if ncols == 1 else "data", fontsize=9)
    for j in range(len(cols), nrows * ncols):
        grid[j // ncols][j % ncols].set_axis_off()
    handles, labels = grid[0][0].get_legend_handles_labels()
    if len(cols) < nrows * ncols:  # an empty panel: the legend goes there
        last = grid[nrows - 1][ncols - 1]
        last.legend(handles, labels, loc="center", frameon=False, title="series")
    else:
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=min(len(labels), 2 if ncols == 1 else 3),
            frameon=False,
        )
    fig.suptitle(f"Metric vs. {xtitle}", fontsize=11)
    return fig


def _series_label(stages: str, pointing: str | None) -> str:
    return f"stages {stages}" + (f", pointing {pointing}" if pointing is not None else "")


def _grouped_bars(table: Any, groups: Sequence[tuple[str, Any]], title: str) -> Any:
    """Benchmarks on x, one bar per (label, row) in ``groups``, CI error bars."""
    cols = table.columns
    fig = _figure(max(5.0, 0.95 * len(cols) * max(1, len(groups)) / 2 + 2.5), 3.6)
    ax = fig.subplots()
    width = 0.8 / max(1, len(groups))
    shown: list[float] = []
    for k, (label, row) in enumerate(groups):
        vals = [_pct(v.mv) for v in row.values]
        x = [j + (k - (len(groups) - 1) / 2) * width for j in range(len(cols))]
        ax.bar(
            x,
            [v[0] for v in vals],
            width * 0.92,
            yerr=[[v[1] for v in vals], [v[2] for v in vals]],
            capsize=2,
            color=PALETTE[k % len(PALETTE)],
            label=label,
            error_kw={"linewidth": 0.8},
        )
        _mark_undefined(ax, x, [v[0] for v in vals], horizontal=False, na=[v.na for v in row.values])
        shown += [v[0] for v in vals]
    ax.set_xticks(range(len(cols)), [f"{c.title}\n{_metric_title(c.metric)}" for c in cols])
    ax.set_ylabel("score (%)")
    ax.set_ylim(*value_limits(shown, table.rate))
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.suptitle(title, fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False)
    return fig


def _recipe(table: Any, axis: str, value: str) -> dict[str, str]:
    """``{axis: value}`` (the recipe's setting, else the axis's first value) when the table varies it."""
    if axis not in table.axes:
        return {}
    values = _values(table, axis)
    return {axis: value if value in values else values[0]}


def stage_bars(table: Any) -> Any:
    want = {"data": _values(table, "data")[-1]} if "data" in table.axes else {}
    want |= _recipe(table, "pointing", "on") | _recipe(table, "captions", "clean")
    return _axis_bars(table, "stages", want, "Training stages")


def pointing_bars(table: Any) -> Any:
    want = {a: _values(table, a)[-1] for a in ("data", "stages") if a in table.axes}
    want |= _recipe(table, "captions", "clean")
    return _axis_bars(table, "pointing", want, "Pointing data off / on / only")


def caption_bars(table: Any) -> Any:
    want = {a: _values(table, a)[-1] for a in ("data", "stages") if a in table.axes}
    want |= _recipe(table, "pointing", "on")
    return _axis_bars(table, "captions", want, "Stage-1 captions")


def _axis_bars(table: Any, axis: str, want: dict[str, str], title: str) -> Any:
    """One bar group per value of ``axis``, the other axes held at ``want`` (named in the title)."""
    rows = _rows(table, **want)
    suffix = ", ".join(f"{a} {axis_text(a, v)}" for a, v in want.items())
    return _grouped_bars(table, [(f"{axis} {r.entry.coords[axis]}", r) for r in rows],
                         f"{title} ({suffix})" if suffix else title)


def benchmark_bars(table: Any) -> Any:
    return _grouped_bars(table, [(_wrap(r.entry.label, 28), r) for r in table.rows[:8]], "Benchmarks")


# --- breakdowns --------------------------------------------------------------------------------


def breakdown_rows(table: Any) -> list[Any]:
    """At most four rows for breakdown plots: for a grid, every stage setting with pointing on at the
    largest data size, plus the last stage setting with pointing off; else the first four rows."""
    if table.layout != "ablation":
        return list(table.rows[:4])
    want = {"data": _values(table, "data")[-1]} if "data" in table.axes else {}
    rows = _rows(table, **want)
    if "pointing" not in table.axes:
        return rows[:4]
    on = [r for r in rows if r.entry.coords.get("pointing") == "on"]
    off = [r for r in rows if r.entry.coords.get("pointing") == "off"]
    return (on + off[-1:])[:4] if on else rows[:4]


def breakdown_groups(table: Any) -> list[tuple[str, str]]:
    rows = breakdown_rows(table)
    out = []
    for col in table.columns:
        groups: list[str] = []
        for r in rows:
            tr = r.entry.record.tasks.get(col.task)
            groups += [g for g in (tr.breakdowns if tr else {}) if g not in groups]
        for g in groups:
            keys = _keys(rows, col.task, g)
            if 1 < len(keys) <= MAX_KEYS and (col.task, g) not in out:
                out.append((col.task, g))
    return out


def _keys(rows: Sequence[Any], task: str, group: str) -> list[str]:
    keys: list[str] = []
    for r in rows:
        tr = r.entry.record.tasks.get(task)
        keys += [k for k in (tr.breakdowns.get(group, {}) if tr else {}) if k not in keys]
    return keys


def breakdown(table: Any, task: str, group: str) -> Any:
    """Horizontal bars: one group of bars per breakdown key, one bar per shown row."""
    col = next(c for c in table.columns if c.task == task)
    rows = breakdown_rows(table)
    keys = _keys(rows, task, group)
    fixed = [a for a in table.axes if len({r.entry.coords.get(a) for r in rows}) <= 1]
    labels = [_wrap(k.replace("_", " "), 22) for k in keys]
    # each key needs room for its bars and for every line of its (wrapped) label
    per_key = [max(0.22 * len(rows), 0.19 * (lab.count("\n") + 1) + 0.12) for lab in labels]
    fig = _figure(6.4, max(2.4, 1.2 + sum(per_key) + 0.22 * math.ceil(len(rows) / 2)))
    ax = fig.subplots()
    h = 0.8 / max(1, len(rows))
    shown: list[float] = []
    for k, r in enumerate(rows):
        tr = r.entry.record.tasks.get(task)
        vals = [
            _pct((tr.breakdowns.get(group, {}).get(key, {}) if tr else {}).get(col.metric)) for key in keys
        ]
        y = [i + (k - (len(rows) - 1) / 2) * h for i in range(len(keys))]
        ax.barh(
            y,
            [v[0] for v in vals],
            h * 0.92,
            xerr=[[v[1] for v in vals], [v[2] for v in vals]],
            capsize=1.5,
            color=PALETTE[k % len(PALETTE)],
            label=short_label(table, r, fixed) or r.entry.label,
            error_kw={"linewidth": 0.7},
        )
        _mark_undefined(ax, y, [v[0] for v in vals], horizontal=True)
        shown += [v[0] for v in vals]
    ax.set_yticks(range(len(keys)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"{_metric_title(col.metric)} (%)")
    ax.set_xlim(*value_limits(shown, table.rate))
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    fig.suptitle(
        f"{TASK_TITLES.get(task, task)}: {_metric_title(col.metric)} by {group.replace('_', ' ')}",
        fontsize=11,
    )
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(2, len(rows)), frameon=False)
    return fig

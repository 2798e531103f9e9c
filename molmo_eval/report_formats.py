"""Text formats of a report table: Markdown, LaTeX (booktabs), CSV, the terminal (rich), and the
Markdown document with breakdowns and samples. The HTML page is `molmo_eval.html_report`.

    Table (molmo_eval.reporting) -> cell texts (value, CI, delta + significance mark, best in bold)
      -> render_markdown / render_latex / render_csv / render_terminal / markdown_document

Pure functions of the table: no timestamps, no file access, so the same records render the same text.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError
from molmo_eval.core.types import MetricValue
from molmo_eval.reporting import (
    AXIS_TITLES,
    FORMATS,
    TASK_TITLES,
    Column,
    Inputs,
    Row,
    SampleStore,
    Table,
    Value,
)


def fmt(v: float | None, rate: bool, digits: int) -> str:
    if v is None or math.isnan(v):
        return "–"
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
    if table.layout == "ablation":
        return [axis_text(a, row.entry.coords.get(a, "")) for a in table.axes]
    return [row.entry.label]


@dataclass(frozen=True)
class CellText:
    value: str
    ci: str
    delta: str  # "+1.2" or ""
    mark: str
    best: bool


def cell_text(table: Table, v: Value | None) -> CellText:
    if v is not None and v.na:
        return CellText("N/A", "", "", "", False)
    if v is None or v.mv is None:
        return CellText("–", "", "", "", False)
    rate, d = table.rate, table.digits
    ci = ""
    if table.ci and v.mv.ci_low is not None and v.mv.ci_high is not None:
        ci = f"{fmt(v.mv.ci_low, rate, d)}–{fmt(v.mv.ci_high, rate, d)}"
    return CellText(fmt(v.mv.value, rate, d), ci, fmt_delta(v.delta, rate, d), v.mark, v.best)


def row_cells(table: Table, row: Row) -> list[CellText]:
    out = [cell_text(table, v) for v in row.values]
    if table.with_average:
        out.append(cell_text(replace(table, ci=False), row.average))
    return out


def caption(table: Table) -> list[str]:
    """Sentences that say how to read the table (shared by every format)."""
    metric_list = ", ".join(f"{c.title}: {c.metric}" for c in table.columns)
    unit = "percent" if table.rate else "metric units"
    lines = [f"Values in {unit} ({metric_list}); best per column in bold."]
    if table.with_average:
        lines.append("Avg. is the unweighted mean of the columns.")
    if any(v.na for row in table.rows for v in row.values):
        lines.append("N/A: a pointing benchmark for a model trained without point tokens (as in Molmo's "
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


def render_markdown(table: Table, title: str | None = None) -> str:
    out = [f"## {title}", ""] if title else []
    head = header(table)
    out.append("| " + " | ".join(head) + " |")
    n_heads = len(head) - len(table.columns) - int(table.with_average)
    out.append("|" + "---|" * n_heads + "---:|" * (len(head) - n_heads))
    for row in table.rows:
        heads = row_heads(table, row)
        if row.is_baseline:
            heads[-1 if table.layout == "ablation" else 0] += " (baseline)"
        cells = []
        for ct in row_cells(table, row):
            s = f"**{ct.value}**" if ct.best else ct.value
            if ct.ci:
                s += f" [{ct.ci}]"
            if ct.delta:
                s += f" ({ct.delta}{ct.mark})"
            cells.append(s)
        out.append("| " + " | ".join(_md_escape(h) for h in heads) + " | " + " | ".join(cells) + " |")
    out += [""] + caption(table)
    return "\n".join(out) + "\n"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def latex_escape(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in s).replace("–", "--")


def render_latex(table: Table) -> str:
    """A booktabs ``tabular`` to ``\\input`` inside a ``table`` environment (needs ``booktabs``)."""
    head = header(table)
    n_heads = len(head) - len(table.columns) - int(table.with_average)
    import textwrap

    note = textwrap.wrap("Needs \\usepackage{booktabs}. " + " ".join(caption(table)), 100)
    out = ["% Generated by `molmo-eval report` from run records; do not edit by hand."]
    out += [f"% {line}" for line in note] + [
        "\\begin{tabular}{" + "l" * n_heads + "r" * (len(head) - n_heads) + "}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in head) + " \\\\",
        "\\midrule",
    ]
    prev = None
    for row in table.rows:
        heads = row_heads(table, row)
        group = heads[0] if table.layout == "ablation" and len(heads) > 1 else None
        if prev is not None and group != prev:
            out.append("\\midrule")
        prev = group
        if row.is_baseline:
            heads[-1 if table.layout == "ablation" else 0] += " (baseline)"
        cells = []
        for ct in row_cells(table, row):
            s = f"\\textbf{{{ct.value}}}" if ct.best else ct.value
            if ct.ci:
                s += f"\\,{{\\scriptsize[{latex_escape(ct.ci)}]}}"
            if ct.delta:
                mark = f"$^{{{ct.mark}}}$" if ct.mark else ""
                s += f"\\,{{\\scriptsize({ct.delta}{mark})}}"
            cells.append(latex_escape(s) if s == "–" else s.replace("–", "--"))
        out.append(" & ".join([latex_escape(h) for h in heads] + cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(out) + "\n"


def render_csv(table: Table) -> str:
    """One row per table row; per column: value, CI, n, delta and adjusted p (percent for rates)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    unit = " (%)" if table.rate else ""
    heads = list(table.axes) if table.layout == "ablation" else []
    cols = ["label"] + heads
    for c in table.columns:
        k = f"{c.task}:{c.metric}"
        cols += [k + unit, f"{k}:ci_low{unit}", f"{k}:ci_high{unit}", f"{k}:n"]
        if table.baseline is not None:
            cols += [f"{k}:delta{unit}", f"{k}:p_adjusted"]
    if table.with_average:
        cols += ["average" + unit] + (["average:delta" + unit] if table.baseline is not None else [])
    w.writerow(cols)
    scale = 100.0 if table.rate else 1.0

    def num(x: float | None) -> str:
        return "" if x is None or math.isnan(x) else f"{scale * x:.4f}"

    for row in table.rows:
        out = [row.entry.label + (" (baseline)" if row.is_baseline else "")]
        out += [row.entry.coords.get(a, "") for a in heads]
        for v in row.values:
            mv = v.mv
            out += [
                num(mv.value if mv else None),
                num(mv.ci_low if mv else None),
                num(mv.ci_high if mv else None),
                str(mv.n) if mv else "",
            ]
            if table.baseline is not None:
                out += [num(v.delta), "" if v.p is None else f"{v.p:.4g}"]
        if table.with_average:
            a = row.average
            out += [num(a.mv.value if a and a.mv else None)]
            if table.baseline is not None:
                out += [num(a.delta if a else None)]
        w.writerow(out)
    return buf.getvalue()


def render_terminal(table: Table, stream: Any = None, title: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    t = RichTable(title=title, title_justify="left")
    head = header(table)
    n_heads = len(head) - len(table.columns) - int(table.with_average)
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i < n_heads else "right", no_wrap=True)
    for row in table.rows:
        heads = row_heads(table, row)
        if row.is_baseline:
            heads[-1 if table.layout == "ablation" else 0] += " (baseline)"
        cells: list[Any] = list(heads)
        for ct in row_cells(table, row):
            txt = Text(ct.value, style="bold" if ct.best else "")
            if ct.ci:
                txt.append(f" [{ct.ci}]", style="dim")
            if ct.delta:
                up = ct.delta.startswith("+")
                txt.append(f" {ct.delta}{ct.mark}", style=("green" if up else "red") if ct.mark else "dim")
            cells.append(txt)
        t.add_row(*cells)
    console = Console(file=stream, soft_wrap=False)
    if not console.is_terminal:  # a file or a pipe: as wide as the table needs
        console = Console(file=stream, soft_wrap=False, width=1000)
    console.print(t)
    for line in caption(table):
        console.print(line, style="dim", highlight=False)


# --- breakdowns --------------------------------------------------------------------------------


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


def breakdown_markdown(table: Table, rows: Sequence[Row]) -> str:
    out = []
    skip = constant_axes(table, rows)
    for bd in breakdown_tables(table, rows):
        out += [
            "",
            f"### {TASK_TITLES.get(bd.column.task, bd.column.task)}: {bd.column.metric} by {bd.group}",
            "",
            f"| {bd.group} | " + " | ".join(_md_escape(short_label(table, r, skip)) for r in rows) + " | n |",
            "|---|" + "---:|" * (len(rows) + 1),
        ]
        for i, k in enumerate(bd.keys):
            vals = [fmt(mv.value if mv else None, table.rate, table.digits) for mv in bd.values[i]]
            out.append(f"| {_md_escape(k)} | " + " | ".join(vals) + f" | {bd.n(i)} |")
    return "\n".join(out).lstrip("\n") + ("\n" if out else "")


def constant_axes(table: Table, rows: Sequence[Row]) -> list[str]:
    return [a for a in table.axes if len({r.entry.coords.get(a) for r in rows}) <= 1]


# --- whole documents ---------------------------------------------------------------------------


def markdown_document(
    table: Table, title: str, *, breakdowns: bool = True, plots: Sequence[str] = (), samples: str = ""
) -> str:
    parts = [
        f"# {title}",
        "",
        "<!-- Generated by `molmo-eval report` from run records; do not edit. -->",
        "",
        render_markdown(table),
    ]
    for p in plots:
        parts += [f"![{Path(p).stem}]({p})", ""]
    if breakdowns:
        rows = highlight_rows(table)
        text = breakdown_markdown(table, rows)
        if text:
            parts += ["## Breakdowns", "", text]
    if samples:
        parts += ["## Samples", "", samples]
    return "\n".join(parts).rstrip("\n") + "\n"


def render(
    table: Table,
    fmt_name: str,
    *,
    title: str = "Results",
    inputs: Inputs | None = None,
    store: SampleStore | None = None,
    plots: bool = True,
    samples: str | None = None,
    n: int = 4,
    view: str | None = None,
    seed: int = 0,
    breakdowns: bool = True,
) -> str:
    """One document in ``fmt_name`` (md, latex, csv, html); the terminal format prints instead."""
    if fmt_name == "md":
        listing = ""
        if samples:
            from molmo_eval import viewer

            listing = viewer.markdown_listing(
                viewer.pick_for_table(table, store or SampleStore(), samples, n, view=view, seed=seed)
            )
        return markdown_document(table, title, breakdowns=breakdowns, samples=listing)
    if fmt_name == "latex":
        return render_latex(table)
    if fmt_name == "csv":
        return render_csv(table)
    if fmt_name == "html":
        from molmo_eval.html_report import html_document

        return html_document(
            table,
            title,
            store=store or SampleStore(),
            plots=plots,
            samples=samples,
            n=n,
            view=view,
            seed=seed,
            breakdowns=breakdowns,
        )
    raise ConfigError(f"--format {fmt_name!r}: expected one of {', '.join(FORMATS)}")

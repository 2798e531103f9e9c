"""A table as CSV, for spreadsheets and scripts: one row per table row; per column the value, its CI,
n, the delta against the baseline and the adjusted p (percent for rates).
"""

from __future__ import annotations

import csv
import io
import math

from molmo_eval.report.model import THROUGHPUT, Paper, Table


def render_csv(table: Table) -> str:
    """One row per table row; per column: value, CI, n, delta and adjusted p (percent for rates)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    unit = " (%)" if table.rate else ""
    heads = list(table.axes) if table.layout == "ablation" else []
    cols = ["label"] + heads
    for c in table.columns:
        k, u = f"{c.task}:{c.metric}", "" if c.task == THROUGHPUT else unit
        cols += [k + u, f"{k}:ci_low{u}", f"{k}:ci_high{u}", f"{k}:n"]
        if table.baseline is not None:
            cols += [f"{k}:delta{u}", f"{k}:p_adjusted"]
    if table.with_average:
        cols += ["average" + unit] + (["average:delta" + unit] if table.baseline is not None else [])
    w.writerow(cols)
    scale = 100.0 if table.rate else 1.0

    def num(x: float | None) -> str:  # empty: no value; NaN: undefined (never 0)
        return "" if x is None else "NaN" if math.isnan(x) else f"{scale * x:.4f}"

    def raw(x: float | None) -> str:  # tokens/s: not a rate
        return "" if x is None else "NaN" if math.isnan(x) else f"{x:.4f}"

    for row in table.rows:
        base = row.is_baseline and "baseline" not in row.entry.label.lower()
        out = [row.entry.label + (" (baseline)" if base else "")]
        out += [row.entry.coords.get(a, "") for a in heads]
        for c, v in zip(table.columns, row.values):
            mv = v.mv
            f = raw if c.task == THROUGHPUT else num
            out += [
                "N/A" if v.na else f(mv.value if mv else None),
                f(mv.ci_low if mv else None),
                f(mv.ci_high if mv else None),
                str(mv.n) if mv else "",
            ]
            if table.baseline is not None:
                out += [f(v.delta), "" if v.p is None else f"{v.p:.4g}"]
        if table.with_average:
            a = row.average
            out += [num(a.mv.value if a and a.mv else None)]
            if table.baseline is not None:
                out += [num(a.delta if a else None)]
        w.writerow(out)
    return buf.getvalue()


def render_csv_paper(paper: Paper) -> str:
    """The paper's ablation tables as CSV blocks separated by an empty line; each block's rows start
    with the table's title (column ``table``), so the blocks can also be read one by one."""
    blocks = []
    for title, t in paper.tables:
        lines = render_csv(t).splitlines()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for i, row in enumerate(csv.reader(lines)):
            w.writerow(["table" if i == 0 else title] + row)
        blocks.append(buf.getvalue())
    return "\n".join(blocks)

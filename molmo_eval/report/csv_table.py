"""A table as CSV, for spreadsheets and scripts: one row per table row; per column the value, its CI,
n, the delta against the baseline and the adjusted p (percent for rates).
"""

from __future__ import annotations

import csv
import io
import math

from molmo_eval.report.model import Table


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

"""The paper's three ablation tables from a grid, in the shapes of the Molmo design document, and a
findings paragraph computed from them. Reads the table model's entries (grid cells) and the paired
tests of `significance`; the renderers draw the result (`model.Paper`).

    Training stage importance   Stage 1 only / Stages 1+2 / Stages 1+2+3 on VQAv2, GQA, RefCOCO,
                                PointQA; each row against the row above
    Pointing                    No pointing / With pointing / Pointing only (stages 1+2+3) on
                                RefCOCO, PointQA, VQAv2 and generation speed (tok/s); against
                                With pointing
    Caption quality             Noisy captions ×K / Clean captions ×1 (stages 1+2+3, pointing on)
                                on VQAv2 and RefCOCO; against the noisy row

Every other axis is held at the recipe's value (pointing on, clean captions, stages 1+2+3), the
largest data size and the first seed. A table whose rows the grid lacks is left out, with a note.
A finding is stated only when its difference has the expected sign and its Holm-adjusted paired
p is below 0.05; otherwise it is printed as "not reproduced" with the numbers. Where the design
document gives both numbers of a comparison, its difference follows ours, so a reader sees where the
synthetic world agrees with it and where it does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from molmo_eval.core.types import MetricValue
from molmo_eval.metrics.paired import holm
from molmo_eval.report.build import choose_columns, order_entries
from molmo_eval.report.inputs import SampleStore
from molmo_eval.report.model import ALPHA, THROUGHPUT, Column, Entry, Inputs, Paper, Row, Table, Value
from molmo_eval.report.significance import paired_p
from molmo_eval.run.throughput import tokens_per_s

RECIPE = {"stages": "1+2+3", "pointing": "on", "captions": "clean"}
PREVIOUS = "the row above"


@dataclass(frozen=True)
class Ablation:
    name: str
    title: str
    axis: str
    rows: tuple[tuple[str, str], ...]  # (axis value, row label)
    tasks: tuple[str, ...]
    baseline: str | None  # axis value of the baseline row; None: each row against the row above
    claims: tuple[tuple[str, str, str, int], ...]  # (row, against, task, expected sign)
    throughput: bool = False
    # (row, against, task) -> the difference the Molmo design document reports, in points, where it
    # gives both numbers (its pointing and data-quality tables; the stage table gives no numbers)
    design: tuple[tuple[tuple[str, str, str], float], ...] = ()


ABLATIONS = (
    Ablation(
        "stages", "Training stage importance", "stages",
        (("1", "Stage 1 only"), ("1+2", "Stages 1+2"), ("1+2+3", "Stages 1+2+3")),
        ("vqav2", "gqa", "refcoco", "pointqa"), None,
        (("1+2", "1", "vqav2", 1), ("1+2", "1", "gqa", 1),
         ("1+2+3", "1+2", "refcoco", 1), ("1+2+3", "1+2", "pointqa", 1)),
    ),
    Ablation(
        "pointing", "Pointing", "pointing",
        (("off", "No pointing"), ("on", "With pointing"), ("only", "Pointing only")),
        ("refcoco", "pointqa", "vqav2"), "on",
        (("on", "off", "refcoco", 1), ("only", "on", "pointqa", 1), ("only", "on", "vqav2", -1)),
        throughput=True,
        design=((("on", "off", "refcoco"), 82.1 - 75.3), (("only", "on", "pointqa"), 74.1 - 71.8)),
    ),
    Ablation(
        "captions", "Caption quality", "captions",
        (("noisy×10", "Noisy captions ×10"), ("clean", "Clean captions ×1")),
        ("vqav2", "refcoco"), "noisy×10",
        (("clean", "noisy×10", "vqav2", 1), ("clean", "noisy×10", "refcoco", 1)),
        design=((("clean", "noisy×10", "vqav2"), 79.3 - 76.2), (("clean", "noisy×10", "refcoco"), 82.1 - 78.5)),
    ),
)


def build_paper(inputs: Inputs, *, store: SampleStore | None = None, seed: int = 0, n_boot: int = 1000,
                digits: int = 1, ci: bool = False, ablations: Sequence[Ablation] = ABLATIONS) -> Paper | None:
    """The three tables and the findings of a grid (None: not a grid)."""
    if not inputs.axes:
        return None
    store = store or SampleStore()
    entries = order_entries(inputs, "ablation")
    tables: list[tuple[str, Table]] = []
    findings: list[str] = []
    notes: list[str] = []
    for ab in ablations:
        ab = _with_noisy_scale(ab, inputs)
        picked = _pick(ab, entries, inputs)
        labels = dict(ab.rows)
        if picked is not None:
            ab = replace(ab, rows=tuple(r for r in ab.rows if r[0] in {e.coords[ab.axis] for e in picked}))
        else:
            notes.append(f"{ab.title}: the grid has no {ab.axis} = {', '.join(v for v, _ in ab.rows)} "
                         "cells at the recipe's other settings; table left out.")
            continue
        table = _table(ab, picked, store, seed, n_boot, digits, ci)
        if table is None:
            notes.append(f"{ab.title}: the grid was not evaluated on {', '.join(ab.tasks)}; table left out.")
            continue
        tables.append((ab.title, table))
        findings += _findings(ab, table, labels)
    return Paper(tuple(tables), tuple(findings), tuple(notes))


def _with_noisy_scale(ab: Ablation, inputs: Inputs) -> Ablation:
    """The captions table uses the grid's noisy value (noisy×K, K as run)."""
    if ab.axis != "captions":
        return ab
    noisy = [v for v in inputs.axis_values.get("captions", ()) if v.startswith("noisy")]
    if not noisy:
        return ab
    k = noisy[-1]
    label = f"Noisy captions ×{k.split('×')[-1]}"

    def sub(v: str) -> str:
        return k if v == "noisy×10" else v

    return replace(ab, rows=((k, label), ab.rows[1]), baseline=k,
                   claims=tuple((sub(a), sub(b), t, s) for a, b, t, s in ab.claims),
                   design=ab.design if k == "noisy×10" else ())  # the design's numbers are for ×10


def _pick(ab: Ablation, entries: Sequence[Entry], inputs: Inputs) -> list[Entry] | None:
    """One entry per row value, the other axes at the recipe's values, largest data, first seed."""
    fixed = {a: v for a, v in RECIPE.items() if a != ab.axis}
    for a in ("data", "seed"):
        vals = inputs.axis_values.get(a, ())
        if vals:
            fixed[a] = vals[-1] if a == "data" else vals[0]
    out: list[Entry] = []
    for value, label in ab.rows:
        want = {**fixed, ab.axis: value}
        hits = [e for e in entries if all(e.coords.get(a, RECIPE.get(a, v)) == v for a, v in want.items())]
        if hits:
            out.append(replace(hits[0], label=label, coords={**hits[0].coords, ab.axis: value}))
    have = {e.coords[ab.axis] for e in out}
    if len(out) < 2 or (ab.baseline is not None and ab.baseline not in have):
        return None
    return out  # rows the grid lacks are left out (their findings: not in this grid)


def _table(ab: Ablation, rows: list[Entry], store: SampleStore, seed: int, n_boot: int, digits: int,
           ci: bool) -> Table | None:
    present = [c for c in choose_columns(rows) if c.task in ab.tasks]
    cols = sorted(present, key=lambda c: ab.tasks.index(c.task))
    if not cols:
        return None
    if ab.throughput:
        cols.append(Column(THROUGHPUT, "tokens_per_s", "Tok/s"))
    values = [[_value(e, c, ab) for c in cols] for e in rows]
    base = [v for v, _ in ab.rows].index(ab.baseline) if ab.baseline else None
    if base is not None:
        pairs = [(i, base) for i in range(len(rows)) if i != base]
    else:
        pairs = [(i, i - 1) for i in range(1, len(rows))]
    tests: dict[tuple[int, int], tuple[float | None, str]] = {}
    for i, b in pairs:
        for j, c in enumerate(cols):
            if c.task != THROUGHPUT and values[i][j].mv is not None and values[b][j].mv is not None:
                tests[(i, j)] = paired_p(rows[b], rows[i], c, store, seed, n_boot)
    keys = [k for k, (p, _) in tests.items() if p is not None]
    adj = dict(zip(keys, holm([float(tests[k][0]) for k in keys])))  # type: ignore[arg-type]
    for i, b in pairs:
        for j in range(len(cols)):
            v, w = values[i][j], values[b][j]
            if v.mv is None or w.mv is None:
                continue
            p = adj.get((i, j))
            values[i][j] = replace(v, delta=v.mv.value - w.mv.value, p=p,
                                   test=tests.get((i, j), (None, ""))[1])
    out_rows = tuple(Row(e, tuple(v), None, i == base) for i, (e, v) in enumerate(zip(rows, values)))
    label = rows[base].label if base is not None else PREVIOUS
    return Table(tuple(cols), out_rows, "models", (), label, ci, digits, len(keys), (), False)


def _value(e: Entry, c: Column, ab: Ablation) -> Value:
    if c.task == THROUGHPUT:
        tps = tokens_per_s(e.record.counts)
        return Value(None if math.isnan(tps) else MetricValue(tps, None, None, 0))
    if e.coords.get("pointing") == "off" and c.task == "pointqa":
        return Value(None, na=True)
    tr = e.record.tasks.get(c.task)
    return Value(tr.metrics.get(c.metric) if tr is not None else None)


def _findings(ab: Ablation, table: Table, labels: dict[str, str]) -> list[str]:
    index = {v: i for i, (v, _) in enumerate(ab.rows)}
    design = dict(ab.design)
    out = []
    for a, b, task, sign in ab.claims:
        j = next((k for k, c in enumerate(table.columns) if c.task == task), None)
        title = _title(table, task) if j is not None else task
        claim = f"{labels[a]} {'beat' if sign > 0 else 'lost to'} {labels[b]} on {title}"
        if a not in index or b not in index:
            out.append(f"Not reproduced: {claim} (not in this grid).")
            continue
        if j is None:
            out.append(f"Not reproduced: {claim} (not evaluated).")
            continue
        v = table.rows[index[a]].values[j]
        if v.delta is None and table.rows[index[b]].values[j].delta is not None:
            w = table.rows[index[b]].values[j]  # the claim's row is the baseline: the test is b's
            v = replace(w, delta=-w.delta, mv=v.mv) if v.mv is not None else v
        if v.delta is None or v.mv is None:
            out.append(f"Not reproduced: {claim} (no value: {'N/A' if v.na else 'missing or undefined'}).")
            continue
        d = _points(100 * v.delta, table.digits)
        ptxt = "no paired test" if v.p is None else p_text(v.p)
        if (a, b, task) in design:
            ptxt += f"; the design document: {_points(design[(a, b, task)], table.digits)}"
        if v.p is not None and v.p < ALPHA and v.delta * sign > 0:
            out.append(f"{claim} by {d} points ({ptxt}).")
        else:
            out.append(f"Not reproduced: {claim} ({d} points, {ptxt}).")
    if ab.throughput:
        j = len(table.columns) - 1
        speeds = [f"{r.entry.label} {_speed(r.values[j])}" for r in table.rows]
        out.append("Generation speed, measured in each evaluation run: " + ", ".join(speeds) + ".")
    return out


def _points(x: float, digits: int) -> str:
    """``+6.8`` / ``−2.1`` (a true minus sign)."""
    return f"{round(x, digits) + 0.0:+.{digits}f}".replace("-", "−")


def _title(table: Table, task: str) -> str:
    return next(c.title for c in table.columns if c.task == task)


def _speed(v: Value) -> str:
    return "not measured" if v.mv is None else f"{v.mv.value:.0f} tok/s"


def p_text(p: float) -> str:
    """``p < 0.001``, ``p < 0.01`` or ``p = 0.03``."""
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return "p < 0.01"
    return f"p = {p:.2g}"

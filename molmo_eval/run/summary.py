"""Render a RunRecord for people: the terminal table printed after a run and ``report.md``.

Reads records only. Values are stored as fractions and shown as percentages with their 95%
bootstrap interval.
"""

from __future__ import annotations

import math
from typing import TextIO

from molmo_eval.core.types import MetricValue, RunRecord


def pct(v: float | None) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def ci_text(mv: MetricValue) -> str:
    if mv.ci_low is None or mv.ci_high is None:
        return ""
    return f"[{pct(mv.ci_low)}, {pct(mv.ci_high)}]"


def rows(record: RunRecord) -> list[tuple[str, str, str, str, str]]:
    out = []
    for name, tr in record.tasks.items():
        for i, (m, mv) in enumerate(tr.metrics.items()):
            out.append((name if i == 0 else "", m, pct(mv.value), ci_text(mv), str(mv.n)))
    return out


def cache_line(record: RunRecord) -> str:
    """Where the outputs came from: "430 samples, 430 from cache, 0 model calls"."""
    c = record.counts
    off = " (cache off)" if record.config.get("use_cache") is False else ""
    return (f"{c.get('samples', 0)} samples, {c.get('cache_hits', 0)} from cache{off}, "
            f"{c.get('model_calls', 0)} model calls")


def print_table(record: RunRecord, stream: TextIO | None = None, *, counts: bool = True) -> None:
    """The run's metrics table; ``counts`` adds the `cache_line` (off when re-scoring a saved run)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{record.model.name} · {record.model.fingerprint[:16]}", title_justify="left")
    for col, just in (("Task", "left"), ("Metric", "left"), ("Value (%)", "right"), ("95% CI", "right"),
                      ("n", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows(record):
        table.add_row(*r)
    console = Console(file=stream, soft_wrap=False)
    console.print(table)
    for name, tr in record.tasks.items():
        if tr.n_failed or tr.n_unparseable:
            console.print(f"[yellow]{name}: {tr.n_failed} failed, {tr.n_unparseable} unparseable "
                          f"of {tr.n} samples[/yellow]")
    for err in record.errors:
        console.print(f"[red]error: {err}[/red]")
    if counts and record.counts:
        console.print(cache_line(record), highlight=False)


def markdown_report(record: RunRecord) -> str:
    lines = [
        f"# molmo-eval run {record.run_id}",
        "",
        f"- model: `{record.model.name}` (fingerprint `{record.model.fingerprint}`, points in "
        f"{record.model.coord_space})",
        f"- created: {record.created} · status: **{record.status}** · molmo-eval "
        f"{record.packages.get('molmo_eval', '?')}",
        f"- wall time: {record.timings.get('total', 0):.1f} s",
        "",
        "| Task | Metric | Value (%) | 95% CI | n |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in rows(record)]
    for name, tr in record.tasks.items():
        extra = f" (variant `{tr.variant}`)" if tr.variant != "official" else ""
        lines += ["", f"## {name}{extra}", "",
                  f"{tr.n} samples from {', '.join(tr.splits)}; {tr.n_failed} failed, "
                  f"{tr.n_unparseable} unparseable."]
        for group, keys in tr.breakdowns.items():
            if not keys:
                continue
            metrics = list(next(iter(keys.values())).keys())
            lines += ["", f"By {group}:", "", f"| {group} | " + " | ".join(metrics) + " | n |",
                      "|---|" + "---:|" * (len(metrics) + 1)]
            for key, ms in keys.items():
                n = max((mv.n for mv in ms.values()), default=0)
                lines.append(f"| {key} | " + " | ".join(pct(ms[m].value) for m in metrics) + f" | {n} |")
    if record.errors:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in record.errors]
    return "\n".join(lines) + "\n"

"""The regression gate's report for people and CI systems: terminal table, JUnit XML, Markdown.

Last step of the gate: `molmo_eval.gate.verdicts` produces a `GateReport`; these pure functions render it.
JUnit XML follows the usual (Ant/Jenkins/GitLab/GitHub test reporter) shape: ``testsuites`` >
``testsuite`` per task > ``testcase`` per task x metric, with ``failure`` for a regression,
``error`` for "cannot compare", ``skipped`` for metrics undefined in both runs and for metrics
without a better direction (reported, never gated). The Markdown is
made for a pull-request comment or a CI step summary: verdict first, what failed next, the full
table folded.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TextIO

from molmo_eval.gate.verdicts import GateReport, Outcome, Verdict, fmt_delta, fmt_p, fmt_value

_MARK = {Outcome.PASS: "✅", Outcome.IMPROVED: "🟢", Outcome.REGRESSED: "❌", Outcome.ERROR: "⚠️",
         Outcome.SKIPPED: "➖", Outcome.REPORTED: "ℹ️"}
_STYLE = {Outcome.PASS: "green", Outcome.IMPROVED: "bold green", Outcome.REGRESSED: "bold red",
          Outcome.ERROR: "bold yellow", Outcome.SKIPPED: "dim", Outcome.REPORTED: "dim"}


def headline(report: GateReport) -> str:
    """One line: the verdict and what caused it."""
    n_err, n_reg = report.count(Outcome.ERROR) + len(report.problems), report.count(Outcome.REGRESSED)
    if report.exit_code == 2:
        what = f"{_plural(n_err, 'comparison')} could not be made" if n_err else "nothing to compare"
        return f"cannot compare: {what}" + (f" ({n_reg} regressed)" if n_reg else "")
    if n_reg:
        return f"regression: {_plural(n_reg, 'metric')} regressed in {', '.join(report.regressed_tasks)}"
    n_imp = report.count(Outcome.IMPROVED)
    return "pass" + (f" ({n_imp} improved)" if n_imp else "")


def policy_text(report: GateReport) -> str:
    c = report.config
    adj = ", Holm-adjusted" if c.correction == "holm" else ""
    sig = f"significant at α = {c.alpha:g} on paired per-sample scores{adj}"
    if c.policy.value == "tolerance":
        return "policy `tolerance`: a regression is a drop beyond its tolerance (p-values shown, not used)"
    if c.policy.value == "significance":
        return f"policy `significance`: a regression is a drop {sig}"
    return f"policy `both`: a regression is a drop beyond its tolerance and {sig}"


def _test_text(v: Verdict) -> str:
    t = v.test
    if t is None or not math.isfinite(t.p_value):
        return "–"
    if t.method == "mcnemar":
        return f"McNemar {t.losses}↓ {t.gains}↑"
    return f"{t.method} ×{t.n_boot}"


def _tol_text(v: Verdict, report: GateReport) -> str:
    return "–" if report.config.policy.value == "significance" else fmt_delta(v.tolerance, v.is_rate, signed=False)


def row(v: Verdict, report: GateReport) -> tuple[str, ...]:
    """Task, metric, baseline, current, delta, tolerance, p (adjusted), test, outcome."""
    return (v.task, v.metric, fmt_value(v.baseline, v.is_rate), fmt_value(v.current, v.is_rate),
            fmt_delta(v.delta, v.is_rate), _tol_text(v, report), fmt_p(v.p_adjusted), _test_text(v),
            v.outcome.value)


HEADER = ("Task", "Metric", "Baseline", "Current", "Δ", "Tolerance", "p", "Test", "Verdict")


# --- terminal --------------------------------------------------------------------------------

def print_report(report: GateReport, stream: TextIO | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=stream, soft_wrap=False)
    if not console.is_terminal:  # CI logs: no terminal width to respect, keep rows on one line
        console = Console(file=stream, soft_wrap=False, width=160)
    table = Table(title=f"molmo-eval gate · {report.current} vs baseline {report.baseline}",
                  title_justify="left")
    for name in HEADER:
        name = "p_adj" if name == "p" and report.config.correction == "holm" else name
        table.add_column(name, justify="left" if name in ("Task", "Metric", "Test", "Verdict") else "right")
    for v in report.verdicts:
        cells = list(row(v, report))
        cells[-1] = f"[{_STYLE[v.outcome]}]{cells[-1]}[/]"
        table.add_row(*cells)
    if report.verdicts:
        console.print(table)
    for v in report.verdicts:
        if v.outcome in (Outcome.REGRESSED, Outcome.ERROR, Outcome.IMPROVED):
            console.print(f"[{_STYLE[v.outcome]}]{v.outcome.value}[/] {v.task}/{v.metric}: {v.reason}",
                          markup=True, highlight=False)
    for p in report.problems:
        console.print(f"[bold yellow]cannot compare:[/] {p}", highlight=False)
    for n in _all_notes(report):
        console.print(f"[dim]note: {n}[/]", highlight=False)
    console.print(f"{report.config.policy.value} policy, α={report.config.alpha:g}, "
                  f"{_plural(len(report.verdicts), 'comparison')} in {report.seconds:.2f}s → "
                  f"[{_headline_style(report)}]{headline(report)}[/] (exit {report.exit_code})", highlight=False)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _headline_style(report: GateReport) -> str:
    return {0: "bold green", 1: "bold red"}.get(report.exit_code, "bold yellow")


def _all_notes(report: GateReport) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(report.notes)
    for v in report.verdicts:
        for n in v.notes:
            seen.setdefault(f"{v.task}: {n}", None)
    return list(seen)


# --- JUnit XML -------------------------------------------------------------------------------

def junit_xml(report: GateReport) -> str:
    """JUnit XML: one testcase per task x metric (plus one per run-level problem)."""
    root = ET.Element("testsuites", name="molmo-eval gate")
    suites: list[ET.Element] = []
    if report.problems:  # run-level: one errored case each, in a suite of their own
        suites.append(ET.SubElement(root, "testsuite", name="molmo-eval gate inputs"))
        for i, p in enumerate(report.problems):
            case = ET.SubElement(suites[0], "testcase", classname="molmo-eval.gate", name=f"inputs[{i}]", time="0")
            ET.SubElement(case, "error", message=p, type="cannot-compare").text = p
    by_task: dict[str, ET.Element] = {}
    for v in report.verdicts:
        if v.task not in by_task:
            by_task[v.task] = ET.SubElement(root, "testsuite", name=v.task)
            suites.append(by_task[v.task])
        by_task[v.task].append(_testcase(v, report))
    for suite in suites:
        _count(suite, suite.findall("testcase"))
    _count(root, root.findall("./testsuite/testcase"))
    root.set("time", f"{report.seconds:.3f}")
    props = ET.Element("properties")
    for k, val in (("baseline", report.baseline), ("current", report.current), ("policy", report.config.policy.value),
                   ("alpha", f"{report.config.alpha:g}"), ("correction", report.config.correction)):
        ET.SubElement(props, "property", name=k, value=val)
    for suite in suites:
        suite.insert(0, _copy(props))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(v: Verdict, report: GateReport) -> ET.Element:
    case = ET.Element("testcase", classname=f"molmo-eval.gate.{v.task}", name=v.metric, time="0")
    detail = _detail(v, report)
    if v.outcome is Outcome.REGRESSED:
        ET.SubElement(case, "failure", message=f"{v.metric} regressed: {v.reason}", type="regression").text = detail
    elif v.outcome is Outcome.ERROR:
        ET.SubElement(case, "error", message=f"cannot compare: {v.reason}", type="cannot-compare").text = detail
    elif v.outcome in (Outcome.SKIPPED, Outcome.REPORTED):
        ET.SubElement(case, "skipped", message=v.reason)
    ET.SubElement(case, "system-out").text = detail
    return case


def _detail(v: Verdict, report: GateReport) -> str:
    cells = dict(zip(HEADER, row(v, report), strict=True))
    lines = [f"{k}: {cells[k]}" for k in HEADER[2:8]] + [f"reason: {v.reason}"]
    if v.test is not None and v.test.ci_low is not None and v.test.ci_high is not None:
        lines.append(f"{100 * (1 - report.config.alpha):g}% interval of Δ: "
                     f"[{fmt_delta(v.test.ci_low, v.is_rate)}, {fmt_delta(v.test.ci_high, v.is_rate)}], "
                     f"raw p: {fmt_p(v.test.p_value)}, n: {v.test.n}")
    lines += [f"note: {n}" for n in v.notes]
    return "\n".join(lines)


def _count(el: ET.Element, cases: Sequence[ET.Element]) -> None:
    el.set("tests", str(len(cases)))
    for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        el.set(attr, str(sum(c.find(tag) is not None for c in cases)))
    el.set("time", "0")


def _copy(el: ET.Element) -> ET.Element:
    return ET.fromstring(ET.tostring(el))


# --- Markdown --------------------------------------------------------------------------------

def markdown(report: GateReport) -> str:
    """A summary for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
    mark = {0: "✅", 1: "❌"}.get(report.exit_code, "⚠️")
    counts = ", ".join(f"{report.count(o)} {o.value}" for o in Outcome if report.count(o))
    out = [f"## {mark} molmo-eval gate: {_md(headline(report))}", "",
           f"Current {_code(report.current)} ({_md(report.current_run or '?')}) against baseline "
           f"{_code(report.baseline)} ({_md(report.baseline_run or '?')}).",
           f"{_md(policy_text(report))}. {_plural(len(report.verdicts), 'comparison')}: {counts or 'none'}.", ""]
    if report.problems:
        out += ["### ⚠️ Cannot compare", ""] + [f"- {_md(p)}" for p in report.problems] + [""]
    for outcome, title in ((Outcome.REGRESSED, "❌ Regressions"), (Outcome.ERROR, "⚠️ Could not compare"),
                           (Outcome.IMPROVED, "🟢 Improvements")):
        sel = [v for v in report.verdicts if v.outcome is outcome]
        if sel:
            out += [f"### {title}", ""] + _md_table(sel, report, with_reason=True) + [""]
    if report.verdicts:
        out += [f"<details><summary>All {len(report.verdicts)} comparisons</summary>", ""]
        out += _md_table(report.verdicts, report, with_reason=False) + ["", "</details>", ""]
    notes = _all_notes(report)
    if notes:
        out += ["**Notes**", ""] + [f"- {_md(n)}" for n in notes] + [""]
    out.append("Values in % where both are rates (Δ in percentage points); p is the "
               + ("Holm-adjusted " if report.config.correction == "holm" else "")
               + "two-sided p of the paired test.")
    return "\n".join(out) + "\n"


def _md_table(verdicts: Sequence[Verdict], report: GateReport, with_reason: bool) -> list[str]:
    head = list(HEADER[:-1]) + (["Why"] if with_reason else ["Verdict"])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < 2 or h in ("Test", "Why", "Verdict")
                                                             else "--:" for i, h in enumerate(head)) + "|"]
    for v in verdicts:
        cells = list(row(v, report))
        cells[-1] = v.reason if with_reason else f"{_MARK[v.outcome]} {v.outcome.value}"
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    return lines


def _md(text: str) -> str:
    """Escape what would break a Markdown table cell or start markup."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"

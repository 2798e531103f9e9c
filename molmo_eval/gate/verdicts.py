"""The regression gate's verdicts: a current run compared with a baseline, task x metric.

Sits after the records (`molmo_eval.gate.baseline` reads both sides) and before the outputs
(`molmo_eval.gate.output`: terminal table, JUnit XML, Markdown). Pure: no files, no printing.

Semantics (docs/gate.md has the user's version):

- every metric of every baseline task (or of ``tasks``) is compared; a task only in the current
  run is noted, not gated; breakdowns are not gated (too many comparisons);
- every value is recomputed from the paired per-sample scores of both sides, never taken from a
  record alone; a recomputed value that is not the recorded one means the run's files disagree
  (ERROR), and a side without per-sample scores cannot be gated (ERROR);
- ``drop`` is the deterioration in the metric's own units, signed by the metric's `Direction` (the
  installed plugin's, else the one recorded with the baseline in results.json, else higher);
  a metric without a direction (POPE's yes_ratio) is REPORTED with its delta, never tested or gated
  (still recomputed and checked against its record when it can be);
  the p-values come from paired per-sample scores (`molmo_eval.metrics.paired`),
  Holm-adjusted across all tests of the report unless ``correction="none"``;
- policy ``both`` (default): a regression is ``drop > tolerance`` and ``p_adj < alpha``;
  ``tolerance``: ``drop > tolerance``; ``significance``: ``drop > 0`` and ``p_adj < alpha``.
  Improvements mirror the rule. Tolerances default to 0.0;
- fails closed: anything that makes a comparison untrustworthy is an ERROR verdict (or a run-level
  problem), never a pass. A metric that needs a significance test which cannot be computed is an
  ERROR only when the outcome depends on it (a drop beyond tolerance).
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from molmo_eval.core.errors import ConfigError
from molmo_eval.core.metric import Columns, Direction, Metric
from molmo_eval.core.registry import plugin_metrics
from molmo_eval.core.types import TaskResult
from molmo_eval.gate.baseline import RunData
from molmo_eval.metrics.generic import mean
from molmo_eval.metrics.paired import N_BOOT, PairedTest, holm, paired_tests
from molmo_eval.metrics.stats import seed_for
from molmo_eval.run.scores import TaskRows


class Policy(str, enum.Enum):
    BOTH = "both"  # beyond tolerance and significant
    TOLERANCE = "tolerance"  # beyond tolerance
    SIGNIFICANCE = "significance"  # significant

    @property
    def needs_test(self) -> bool:
        return self is not Policy.TOLERANCE

    @property
    def uses_tolerance(self) -> bool:
        return self is not Policy.SIGNIFICANCE


class Outcome(str, enum.Enum):
    PASS = "pass"
    IMPROVED = "improved"
    REGRESSED = "regressed"
    ERROR = "error"  # cannot compare
    SKIPPED = "skipped"  # undefined in both runs (no applicable samples)
    REPORTED = "reported"  # a metric without a better direction: shown, never gated


@dataclass(frozen=True)
class Tolerances:
    """Allowed drops in metric units (fractions: 0.01 = one percentage point)."""

    default: float = 0.0
    by_metric: Mapping[str, float] = field(default_factory=dict)
    by_task_metric: Mapping[str, float] = field(default_factory=dict)  # "task:metric" -> drop

    def get(self, task: str, metric: str) -> float:
        return self.by_task_metric.get(f"{task}:{metric}", self.by_metric.get(metric, self.default))

    @classmethod
    def parse(cls, specs: Sequence[str]) -> Tolerances:
        """``METRIC=DROP``, ``TASK:METRIC=DROP`` or ``*=DROP``; DROP a number or ``<points>pt``.
        Comma-separated lists are split. Every malformed spec is reported at once."""
        default, by_metric, by_tm, problems = 0.0, {}, {}, []
        for spec in (s.strip() for text in specs for s in text.split(",") if s.strip()):
            name, sep, value = spec.partition("=")
            drop = _parse_drop(value.strip())
            if not sep or not name.strip() or drop is None:
                problems.append(f"--tolerance {spec!r}: expected METRIC=DROP, TASK:METRIC=DROP or *=DROP "
                                f"with DROP a number >= 0 (0.01) or points (1pt)")
                continue
            name = name.strip()
            if name == "*":
                default = drop
            elif ":" in name:
                by_tm[name] = drop
            else:
                by_metric[name] = drop
        if problems:
            raise ConfigError(problems)
        return cls(default, by_metric, by_tm)


def _parse_drop(text: str) -> float | None:
    scale = 1.0
    if text.endswith("pt"):
        text, scale = text[:-2].strip(), 0.01
    try:
        v = float(text) * scale
    except ValueError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


@dataclass(frozen=True)
class GateConfig:
    policy: Policy = Policy.BOTH
    alpha: float = 0.05
    tolerances: Tolerances = field(default_factory=Tolerances)
    tasks: tuple[str, ...] | None = None  # None: every baseline task
    correction: str = "holm"  # "holm" | "none"
    seed: int = 0
    n_boot: int = N_BOOT
    max_failed: int = 0  # failed samples (model errors) a task may have in either run


@dataclass(frozen=True)
class Verdict:
    task: str
    metric: str
    outcome: Outcome
    reason: str  # one line: why this outcome
    baseline: float | None = None
    current: float | None = None
    direction: Direction = Direction.HIGHER
    tolerance: float = 0.0
    test: PairedTest | None = None
    p_adjusted: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def is_rate(self) -> bool:
        return all(v is None or math.isnan(v) or 0.0 <= v <= 1.0 for v in (self.baseline, self.current))


@dataclass(frozen=True)
class GateReport:
    baseline: str  # labels (paths) of the two sides
    current: str
    config: GateConfig
    verdicts: tuple[Verdict, ...]
    problems: tuple[str, ...] = ()  # run-level: the comparison is incomplete or untrustworthy
    notes: tuple[str, ...] = ()
    baseline_run: str = ""  # "run id · model" for display
    current_run: str = ""
    seconds: float = 0.0

    def count(self, outcome: Outcome) -> int:
        return sum(v.outcome is outcome for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 2 cannot compare (takes precedence: the verdict is incomplete)."""
        if self.problems or self.count(Outcome.ERROR) or not self.verdicts:
            return 2
        return 1 if self.count(Outcome.REGRESSED) else 0

    @property
    def regressed_tasks(self) -> list[str]:
        return sorted({v.task for v in self.verdicts if v.outcome is Outcome.REGRESSED})


# --- metrics of a task: the installed plugin's (`registry.plugin_metrics`), else the column mean --

MetricResolver = Callable[[str, TaskResult], tuple[Mapping[str, Metric] | None, str]]


def describe(data: RunData) -> str:
    r = data.record
    return f"{r.run_id} · {r.model.name} {r.model.fingerprint[:12]}".strip()


# --- the comparison --------------------------------------------------------------------------

@dataclass(frozen=True)
class Measured:
    """A metric of one task before classification."""

    task: str
    metric: str
    base: float
    cur: float
    direction: Direction
    test: PairedTest | None
    untestable: str  # why there is no test ("" when there is one)
    notes: tuple[str, ...]


def compare(baseline: RunData, current: RunData, config: GateConfig,
            resolve: MetricResolver = plugin_metrics) -> GateReport:
    """Every verdict of the gate for ``current`` against ``baseline``."""
    t0 = time.perf_counter()
    problems, notes = _run_problems(baseline, current, config)
    tasks = [t for t in baseline.record.tasks if config.tasks is None or t in config.tasks]
    errors: list[Verdict] = []
    measured: list[Measured] = []
    for task in tasks:
        b_tr = baseline.record.tasks[task]
        why = _task_problem(task, baseline, current, config)
        if why:
            errors += [Verdict(task, m, Outcome.ERROR, why) for m in b_tr.metrics]
            continue
        got, task_errors = _measure_task(task, baseline, current, config, resolve)
        measured += got
        errors += task_errors
    notes += _tolerance_notes(config.tolerances, baseline, tasks)
    verdicts = errors + _classify_all(measured, config)
    order = {(t, m): i for i, (t, m) in enumerate((t, m) for t in tasks for m in baseline.record.tasks[t].metrics)}
    verdicts.sort(key=lambda v: order.get((v.task, v.metric), len(order)))
    return GateReport(baseline.label, current.label, config, tuple(verdicts), tuple(problems), tuple(notes),
                      describe(baseline), describe(current), time.perf_counter() - t0)


def cannot_compare(baseline: str, current: str, config: GateConfig, problem: str) -> GateReport:
    """The report when a side cannot even be read."""
    return GateReport(baseline, current, config, (), (problem,))


def _run_problems(baseline: RunData, current: RunData, config: GateConfig) -> tuple[list[str], list[str]]:
    problems, notes = [], []
    for side, data in (("baseline", baseline), ("current", current)):
        r = data.record
        if r.status != "ok":
            errs = f": {'; '.join(r.errors)}" if r.errors else ""
            problems.append(f"the {side} run {r.run_id} has status {r.status!r}{errs}")
    if config.tasks is not None:
        missing = [t for t in config.tasks if t not in baseline.record.tasks]
        if missing:
            problems.append(f"--tasks names {', '.join(missing)}, not in the baseline "
                            f"(it has {', '.join(baseline.record.tasks) or 'no tasks'})")
    if not baseline.record.tasks:
        problems.append(f"the baseline {baseline.label} has no tasks")
    extra = [t for t in current.record.tasks if t not in baseline.record.tasks
             and (config.tasks is None or t in config.tasks)]
    if extra:
        notes.append(f"not gated (no baseline): {', '.join(extra)}")
    return problems, notes


def _task_problem(task: str, baseline: RunData, current: RunData, config: GateConfig) -> str:
    """Why this task cannot be compared at all ("" when it can)."""
    b = baseline.record.tasks[task]
    c = current.record.tasks.get(task)
    if c is None:
        return "task missing from the current run"
    for attr, same in (("variant", b.variant == c.variant), ("version", b.version == c.version),
                       ("splits", sorted(b.splits) == sorted(c.splits))):
        if not same:
            return f"different task {attr}: baseline {getattr(b, attr)!r}, current {getattr(c, attr)!r}"
    if dict(b.data_digests) != dict(c.data_digests):
        files = sorted(k for k in set(b.data_digests) | set(c.data_digests)
                       if b.data_digests.get(k) != c.data_digests.get(k))
        return f"different dataset files (digests differ for {', '.join(files)})"
    for side, tr in (("baseline", b), ("current", c)):
        if tr.n_failed > config.max_failed:
            return (f"{tr.n_failed} samples failed in the {side} run (model errors after retries), "
                    f"more than --max-failed {config.max_failed}")
    b_rows, c_rows = _rows(baseline, task), _rows(current, task)
    if b_rows is None or c_rows is None:
        side = "baseline" if b_rows is None else "current run"
        return (f"the {side} has no per-sample scores for this task: the gate recomputes every metric from "
                "them and never trusts a record's numbers alone (run with --log-samples)")
    return _uid_problem(b_rows, c_rows)


def _rows(data: RunData, task: str) -> TaskRows | None:
    return None if data.rows is None else data.rows.get(task)


def _uid_problem(b: TaskRows, c: TaskRows) -> str:
    for side, rows in (("baseline", b), ("current", c)):
        if len(set(rows.uids.tolist())) != len(rows):
            return f"duplicate sample uids in the {side} run"
    bs, cs = set(b.uids.tolist()), set(c.uids.tolist())
    if bs == cs:
        return ""
    only_b, only_c = sorted(bs - cs), sorted(cs - bs)
    parts = [f"{len(x)} only in the {side} (e.g. {x[0]})" for side, x in
             (("baseline", only_b), ("current run", only_c)) if x]
    return "different sample sets: " + "; ".join(parts)


def _aligned(b: TaskRows, c: TaskRows) -> tuple[Columns, Columns]:
    """Both runs' columns with the current rows put in the baseline's uid order."""
    pos = {u: i for i, u in enumerate(c.uids.tolist())}
    perm = np.fromiter((pos[u] for u in b.uids.tolist()), dtype=np.int64, count=len(b))
    return dict(b.cols), {k: v[perm] for k, v in c.cols.items()}


def _measure_task(task: str, baseline: RunData, current: RunData, config: GateConfig,
                  resolve: MetricResolver) -> tuple[list[Measured], list[Verdict]]:
    """Every metric of the task recomputed from both sides' per-sample scores (never taken from the
    records alone) and tested; a metric whose recomputed value is not the recorded one is an ERROR."""
    b_tr, c_tr = baseline.record.tasks[task], current.record.tasks[task]
    errors: list[Verdict] = []
    names = []
    for m in b_tr.metrics:
        if m not in c_tr.metrics:
            errors.append(Verdict(task, m, Outcome.ERROR, "metric missing from the current run"))
        else:
            names.append(m)
    plugin, why = resolve(task, b_tr)
    recorded = baseline.record.higher_is_better().get(task, {})
    directions = {m: _direction(plugin, recorded, m) for m in names}
    b_rows, c_rows = _rows(baseline, task), _rows(current, task)
    assert b_rows is not None and c_rows is not None  # _task_problem refused the task otherwise
    base, cur = _aligned(b_rows, c_rows)
    sides = ((baseline.label, base, b_tr), (current.label, cur, c_tr))
    chosen: dict[str, tuple[Metric | None, tuple[float, float], tuple[str, ...]]] = {}
    for name in names:
        metric, values, problem, notes = _recompute(name, sides, plugin, why, directions[name])
        if problem:
            errors.append(Verdict(task, name, Outcome.ERROR, problem, b_tr.metrics[name].value,
                                  c_tr.metrics[name].value, directions[name], notes=notes))
        else:
            assert values is not None
            chosen[name] = (metric, values, notes)
    # a metric without a better direction is never tested (and takes no share of Holm's alpha)
    testable = [m for name, (m, _, _) in chosen.items() if m is not None and directions[name] is not Direction.NONE]
    tests, failed = _run_tests(task, testable, base, cur, config)
    measured = [Measured(task, name, values[0], values[1], directions[name], tests.get(name),
                         "no better direction" if directions[name] is Direction.NONE
                         else failed.get(name, "") if name not in tests else "", notes)
                for name, (_metric, values, notes) in chosen.items()]
    return measured, errors


def _direction(plugin: Mapping[str, Metric] | None, recorded: Mapping[str, bool | None], name: str) -> Direction:
    """The installed plugin's direction of a metric, else the one recorded with the baseline, else higher."""
    metric = plugin.get(name) if plugin is not None else None
    if metric is not None:
        return metric.direction
    return Direction.of(recorded[name]) if name in recorded else Direction.HIGHER


Side = tuple[str, Columns, TaskResult]  # label (path), aligned per-sample columns, the record's result


def _recompute(name: str, sides: Sequence[Side], plugin: Mapping[str, Metric] | None, why: str,
               direction: Direction
               ) -> tuple[Metric | None, tuple[float, float] | None, str, tuple[str, ...]]:
    """The Metric for ``name``, its value on each side's per-sample scores, and why it cannot be
    used ("" when it can): no way to compute it, a failure, or a value its record does not state.
    A metric without a direction that cannot be recomputed is only shown: (None, recorded values)."""
    metric = plugin.get(name) if plugin is not None else None
    notes: tuple[str, ...] = ()
    if metric is None:
        lead = why or f"the task plugin has no metric {name!r}"
        if not all(name in cols and cols[name].dtype.kind == "f" for _, cols, _ in sides):
            if direction is Direction.NONE:  # never gated: shown as recorded, with why it is unverified
                note = f"{lead}; no per-sample column {name!r} to recompute it from: the recorded values are shown"
                return None, (sides[0][2].metrics[name].value, sides[1][2].metrics[name].value), "", (note,)
            return None, None, f"{lead}; no per-sample column {name!r} to recompute it from", ()
        metric = mean(name, direction=direction)
        notes = (f"{lead}: {name!r} recomputed as the per-sample mean of column {name!r}, {direction.value} "
                 "is better",)
    values = []
    for label, cols, tr in sides:
        try:
            value = float(metric.value(cols))
        except Exception as e:  # a plugin metric failing on the columns: cannot compare, never a crash
            return None, None, f"the metric failed on the per-sample scores of {label} ({type(e).__name__}: {e})", notes
        recorded = tr.metrics[name].value
        if not (np.isclose(value, recorded, rtol=1e-9, atol=1e-12) or (math.isnan(value) and math.isnan(recorded))):
            return None, None, (f"{label}: the record (results.json) says {recorded:.6g} but its per-sample scores "
                                f"give {value:.6g}; the run's files disagree (or the metric code changed "
                                "without a task version bump)"), notes
        values.append(value)
    return metric, (values[0], values[1]), "", notes


def _run_tests(task: str, metrics: Sequence[Metric], base: Columns, cur: Columns,
               config: GateConfig) -> tuple[dict[str, PairedTest], dict[str, str]]:
    """Paired tests by metric name, and why a test failed for the metrics whose fn raised."""
    seed = seed_for(config.seed, "gate", task)

    def run(ms: Sequence[Metric]) -> list[PairedTest]:
        return paired_tests(ms, base, cur, seed=seed, n_boot=config.n_boot, alpha=config.alpha)

    try:
        return dict(zip((m.name for m in metrics), run(metrics), strict=True)), {}
    except Exception:  # isolate the failing metric; the others keep their (identical) results
        tests, failed = {}, {}
        for m in metrics:
            try:
                tests[m.name] = run([m])[0]
            except Exception as e:
                failed[m.name] = f"the paired test failed ({type(e).__name__}: {e})"
        return tests, failed


# --- classification --------------------------------------------------------------------------

def _classify_all(measured: Sequence[Measured], config: GateConfig) -> list[Verdict]:
    raw = [m.test.p_value if m.test is not None else float("nan") for m in measured]
    adjusted = holm(raw) if config.correction == "holm" else raw
    out = []
    for m, p in zip(measured, adjusted, strict=True):
        p_adj = None if math.isnan(p) else float(p)
        tol = config.tolerances.get(m.task, m.metric)
        outcome, reason = classify(m, p_adj, tol, config)
        out.append(Verdict(m.task, m.metric, outcome, reason, m.base, m.cur, m.direction, tol,
                           m.test, p_adj, m.notes))
    return out


def classify(m: Measured, p_adj: float | None, tol: float, config: GateConfig) -> tuple[Outcome, str]:
    """The outcome of one measured metric under the policy, with its one-line reason."""
    b, c = m.base, m.cur
    if m.direction is Direction.NONE:
        return Outcome.REPORTED, _reported_reason(b, c)
    if math.isnan(b) and math.isnan(c):
        return Outcome.SKIPPED, "undefined in both runs (no applicable samples)"
    if math.isnan(b) or math.isnan(c):
        side = "baseline" if math.isnan(b) else "current run"
        return Outcome.ERROR, f"undefined in the {side} only"
    higher = m.direction is Direction.HIGHER
    drop = (b - c) if higher else (c - b)
    rate = 0.0 <= b <= 1.0 and 0.0 <= c <= 1.0
    if drop == 0:
        return Outcome.PASS, "no change"
    worse = drop > 0
    size = fmt_delta(abs(drop), rate, signed=False)
    word = ("fell" if c < b else "rose") + ("" if higher else " (lower is better)")
    policy = config.policy
    beyond = abs(drop) > tol if policy.uses_tolerance else True
    tol_text = f"tolerance {fmt_delta(tol, rate, signed=False)}"
    if policy.uses_tolerance and not beyond:
        return Outcome.PASS, f"{word} {size}, within {tol_text}"
    hit = Outcome.REGRESSED if worse else Outcome.IMPROVED
    beyond_text = f", beyond {tol_text}" if policy.uses_tolerance else ""
    if not policy.needs_test:
        return hit, f"{word} {size}{beyond_text}"
    if p_adj is None:
        if worse:
            return Outcome.ERROR, f"{word} {size}{beyond_text}, but no significance test: {m.untestable}"
        return Outcome.PASS, f"{word} {size}{beyond_text}; untested ({m.untestable})"
    p_text = f"p{'_adj' if config.correction == 'holm' else ''}={p_adj:.3g}"
    if p_adj < config.alpha:
        return hit, f"{word} {size}{beyond_text}, significant ({p_text} < {config.alpha:g})"
    return Outcome.PASS, f"{word} {size}{beyond_text}, not significant ({p_text})"


def _reported_reason(b: float, c: float) -> str:
    lead = "no better direction: reported, not gated"
    if math.isnan(b) or math.isnan(c) or b == c:
        return lead
    rate = 0.0 <= b <= 1.0 and 0.0 <= c <= 1.0
    return f"{lead} ({'fell' if c < b else 'rose'} {fmt_delta(abs(c - b), rate, signed=False)})"


def _tolerance_notes(tols: Tolerances, baseline: RunData, tasks: Sequence[str]) -> list[str]:
    metrics = {m for t in tasks for m in baseline.record.tasks[t].metrics}
    pairs = {f"{t}:{m}" for t in tasks for m in baseline.record.tasks[t].metrics}
    unused = [k for k in tols.by_metric if k not in metrics] + [k for k in tols.by_task_metric if k not in pairs]
    return [f"--tolerance {k} matches no gated metric" for k in unused]


# --- formatting shared by the outputs ----------------------------------------------------------

def fmt_value(v: float | None, rate: bool) -> str:
    if v is None or math.isnan(v):
        return "–"
    return f"{100 * v:.2f}" if rate else f"{v:.4g}"


def fmt_delta(d: float | None, rate: bool, signed: bool = True) -> str:
    if d is None or math.isnan(d):
        return "–"
    if rate:
        return f"{100 * d:+.2f} pt" if signed else f"{100 * d:.2f} pt"
    return f"{d:+.4g}" if signed else f"{d:.4g}"


def fmt_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"

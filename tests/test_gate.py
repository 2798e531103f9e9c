"""The regression gate: paired tests (molmo_eval.metrics.paired), verdicts (molmo_eval.gate.verdicts),
baseline files (molmo_eval.gate.baseline), outputs (molmo_eval.gate.output) and the `molmo-eval gate`
command.

Runs are fabricated from per-sample scores with the core types and `records.write_record` /
`write_samples`, their recorded metrics aggregated by the same `stats.aggregate` the runner uses.
"""

from __future__ import annotations

import argparse
import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest

from molmo_eval.commands import gate as gate_cmd
from molmo_eval.core import registry
from molmo_eval.core.errors import ConfigError
from molmo_eval.core.metric import Direction, Metric
from molmo_eval.core.task import Task
from molmo_eval.core.types import AnswerKind, MetricValue, ModelInfo, RunRecord, TaskResult
from molmo_eval.gate.baseline import FORMAT_KEY, RunData, load, write_baseline
from molmo_eval.gate.output import junit_xml, markdown
from molmo_eval.gate.verdicts import GateConfig, Outcome, Policy, Tolerances, compare
from molmo_eval.metrics import paired
from molmo_eval.metrics.generic import f1, mean, ratio
from molmo_eval.metrics.paired import (
    binary_mean_column,
    holm,
    mcnemar,
    mcnemar_p,
    mean_bootstrap,
    paired_bootstrap,
    paired_tests,
)
from molmo_eval.metrics.stats import aggregate, columns_from_lines
from molmo_eval.run.rundir import write_run
from molmo_eval.run.scores import TaskRows

# --- a tiny task plugin whose metrics cover every test path --------------------------------------


def _all_rotations(c: Mapping[str, np.ndarray]) -> float:
    """Share of groups whose every row is right (not vectorized: one replicate at a time)."""
    ok: dict[str, bool] = {}
    for key, hit in zip(np.asarray(c["group"]).tolist(), (np.asarray(c["accuracy"]) > 0.5).tolist()):
        ok[key] = ok.get(key, True) and hit
    return sum(ok.values()) / len(ok)


def gate_metrics() -> tuple[Metric, ...]:
    return (
        mean("accuracy"),  # 0/1 -> McNemar
        mean("soft"),  # fractional -> bootstrap
        ratio("precision", "tp", "pred"),
        f1("f1", "tp", "fp", "fn"),
        mean("error_rate", direction=Direction.LOWER),  # 0/1, lower is better
        Metric("all_rotations", _all_rotations, vectorized=False, cluster="group"),
    )


@dataclass(frozen=True)
class GateTask(Task):
    name = "gtask"
    description = "gate tests only"
    splits = ("val",)
    default_splits = ("val",)
    answer_kind = AnswerKind.TEXT
    primary_metric = "accuracy"
    data_dir = "gtask"
    version = "3"

    def load(self, data_dir, split):
        raise NotImplementedError

    def data_files(self, data_dir, split):
        raise NotImplementedError

    def prompt(self, sample, style="default"):
        raise NotImplementedError

    def parse(self, sample, generation, ctx):
        raise NotImplementedError

    def score(self, sample, answer):
        raise NotImplementedError

    def metrics(self):
        return gate_metrics()


@pytest.fixture
def plugin():
    """The test tasks gtask, beta and gamma, installed as plugins (all with the gate metrics)."""
    for name in TASKS:
        registry.register_task(name, GateTask)
    yield
    for name in TASKS:
        registry.unregister(registry.TASK_GROUP, name)


# --- fabricated runs ---------------------------------------------------------------------------


def scores_from_correct(correct: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-sample columns of the gate task derived from 0/1 correctness (4 rows per group)."""
    n = len(correct)
    soft = np.where(correct > 0, 1.0, rng.choice([0.0, 0.3, 0.6], size=n))
    pred = np.ones(n)
    tp = correct.copy()
    return {"accuracy": correct.astype(float), "soft": soft, "tp": tp, "pred": pred, "fp": 1.0 - tp,
            "fn": 1.0 - tp, "error_rate": 1.0 - correct}


def make_run(path: Path, tasks: Mapping[str, Mapping[str, np.ndarray]], *,
             metrics: Mapping[str, Sequence[Metric]] | None = None, status: str = "ok",
             digests: Mapping[str, str] | None = None, variant: str = "official", version: str = "3",
             n_failed: Mapping[str, int] | None = None, order: np.ndarray | None = None,
             drop_uids: int = 0, samples: bool = True, run_id: str | None = None) -> Path:
    """Write a run directory whose samples.jsonl holds ``tasks[task][column]`` per sample and whose
    results.json holds the metrics aggregated from exactly those lines."""
    all_lines, results = [], {}
    for task, cols in tasks.items():
        n = len(next(iter(cols.values())))
        rows = range(n) if order is None else order
        lines = [{"uid": f"{task}/val/{i}", "task": task, "split": "val", "id": str(i),
                  "scores": {k: float(v[i]) for k, v in cols.items()},
                  "fields": {"group": f"g{i // 4}"}, "meta": {"kind": "even" if i % 2 == 0 else "odd"}}
                 for i in rows][drop_uids:]
        ms = (metrics or {}).get(task, gate_metrics())
        agg = aggregate(ms, columns_from_lines(lines), seed=0, label=task, n_boot=0)
        results[task] = TaskResult(task=task, splits=("val",), variant=variant, version=version, n=len(lines),
                                   metrics=agg, breakdowns={}, n_failed=(n_failed or {}).get(task, 0),
                                   primary_metric=ms[0].name,
                                   data_digests=dict(digests or {f"{task}.json": "abc123"}))
        all_lines += lines
    record = RunRecord(run_id=run_id or path.name, created="2025-01-01T00:00:00Z", status=status, config={},
                       packages={"molmo_eval": "0.1.0"}, model=ModelInfo("scripted", "f" * 16, "pixels"),
                       tasks=results, errors=("boom",) if status != "ok" else ())
    write_run(path, record, all_lines if samples else None, "# fabricated run\n")
    return path


def corrupt(correct: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Turn ``fraction`` of the right answers wrong (a controlled corruption of a model's outputs)."""
    rng = np.random.default_rng(seed)
    out = correct.copy()
    right = np.flatnonzero(out > 0)
    out[rng.choice(right, size=int(round(fraction * right.size)), replace=False)] = 0.0
    return out


N = 800
TASKS = ("gtask", "beta", "gamma")
NB = 300  # bootstrap replicates in these tests (the default 1000 is for real gates)


@pytest.fixture
def world(tmp_path: Path):
    """Baseline correctness of three tasks and helpers to write runs from it."""
    rng = np.random.default_rng(7)
    correct = {t: (rng.random(N) < 0.7).astype(float) for t in TASKS}

    def run(name: str, changed: Mapping[str, np.ndarray] | None = None, **kw: Any) -> Path:
        cols = {t: scores_from_correct((changed or {}).get(t, c), np.random.default_rng(1))
                for t, c in correct.items()}
        return make_run(tmp_path / name, cols, **kw)

    return correct, run


def gate(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    gate_cmd.add_parser(sub)
    args = parser.parse_args(["gate", "--n-boot", str(NB), *argv])
    return args.func(args)


def verdicts(report) -> dict[tuple[str, str], Any]:
    return {(v.task, v.metric): v for v in report.verdicts}


# --- McNemar -----------------------------------------------------------------------------------


def test_mcnemar_p_matches_a_hand_computed_binomial():
    # 9 losses, 2 gains: 2 * P[Bin(11, 1/2) <= 2] = 2 * (1 + 11 + 55) / 2048
    assert mcnemar_p(9, 2) == pytest.approx(134 / 2048, abs=1e-15)
    assert mcnemar_p(2, 9) == pytest.approx(134 / 2048, abs=1e-15)
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 5) == pytest.approx(2 / 32)


@pytest.mark.parametrize("losses,gains", [(0, 1), (1, 7), (10, 3), (25, 25), (40, 61), (300, 240), (0, 30)])
def test_mcnemar_p_agrees_with_scipy_binomtest(losses, gains):
    expected = binomtest(gains, losses + gains, 0.5, alternative="two-sided").pvalue
    assert mcnemar_p(losses, gains) == pytest.approx(expected, rel=1e-10)


def test_mcnemar_counts_discordant_pairs_and_ignores_not_applicable_rows():
    base = np.array([1, 1, 1, 0, 0, np.nan, 1, 0], dtype=float)
    cur = np.array([1, 0, 0, 1, 0, np.nan, 0, 0], dtype=float)
    t = mcnemar(base, cur)
    assert (t.losses, t.gains, t.n) == (3, 1, 7)
    assert t.base == pytest.approx(4 / 7) and t.current == pytest.approx(2 / 7)
    assert t.p_value == pytest.approx(binomtest(1, 4, 0.5).pvalue)
    assert t.ci_low < t.delta < t.ci_high


def test_binary_mean_column_only_for_plain_means_of_0_1_columns():
    b = {"a": np.array([1.0, 0, 1, np.nan]), "s": np.array([0.3, 1, 0, 0]), "d": np.array([1.0, 1, 0, 0])}
    c = {"a": np.array([0.0, 0, 1, np.nan]), "s": np.array([0.6, 1, 0, 0]), "d": np.array([1.0, 0, 0, 0])}
    assert binary_mean_column(mean("acc", "a"), b, c) == "a"
    assert binary_mean_column(mean("soft", "s"), b, c) is None  # fractional
    assert binary_mean_column(ratio("r", "d", "a"), b, c) is None  # not a mean of one column
    doubled = Metric("twice", lambda cols: 2 * np.nanmean(cols["a"], axis=-1), count="a")
    assert binary_mean_column(doubled, b, c) is None  # names a column, but is not its mean
    c_nan = dict(c, a=np.array([0.0, np.nan, 1, 1]))
    assert binary_mean_column(mean("acc", "a"), b, c_nan) is None  # different rows apply


# --- paired bootstrap ------------------------------------------------------------------------------


def _pair(n: int = 2000, shift: float = 0.0, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    x = rng.choice([0.0, 0.3, 0.6, 1.0], size=n)
    noise = rng.normal(0, 0.2, size=n)
    y = np.clip(x + noise * (rng.random(n) < 0.3) - shift, 0, 1)
    return {"s": x, "group": np.array([f"g{i // 3}" for i in range(n)], dtype=object)}, \
           {"s": y, "group": np.array([f"g{i // 3}" for i in range(n)], dtype=object)}


def test_paired_bootstrap_is_seeded_and_independent_of_the_other_metrics():
    b, c = _pair(shift=0.01)
    m, other = mean("soft", "s"), ratio("r", "s", "s")
    first = paired_bootstrap([m], b, c, seed=11, n_boot=400)[0]
    again = paired_bootstrap([m], b, c, seed=11, n_boot=400)[0]
    with_other = paired_bootstrap([other, m], b, c, seed=11, n_boot=400)[1]
    reseeded = paired_bootstrap([m], b, c, seed=12, n_boot=400)[0]
    assert first == again == with_other
    assert (reseeded.ci_low, reseeded.ci_high) != (first.ci_low, first.ci_high)
    assert first.method == "bootstrap" and first.n_boot == 400


def test_paired_bootstrap_standard_error_matches_the_analytic_paired_one():
    b, c = _pair(n=3000, shift=0.01, seed=3)
    t = paired_bootstrap([mean("soft", "s")], b, c, seed=0, n_boot=2000)[0]
    d = c["s"] - b["s"]
    se = d.std(ddof=1) / math.sqrt(d.size)  # the paired mean difference's standard error
    z = abs(d.mean()) / se
    from scipy.stats import norm
    assert t.delta == pytest.approx(d.mean(), abs=1e-12)
    assert t.p_value == pytest.approx(2 * norm.sf(z), rel=0.25)
    assert (t.ci_high - t.ci_low) == pytest.approx(2 * 1.96 * se, rel=0.1)


@pytest.mark.parametrize("values", [[0.0, 0.3, 0.6, 0.9, 1.0], None])  # few distinct values / continuous
def test_mean_bootstrap_matches_the_row_bootstrap_and_the_analytic_error(values):
    rng = np.random.default_rng(4)
    n = 3000
    x = rng.choice(values, size=n) if values else rng.random(n)
    y = np.where(rng.random(n) < 0.3, rng.choice(values, size=n) if values else rng.random(n), x) - 0.0
    x[::7] = y[::7] = np.nan  # not applicable on the same rows
    fast = mean_bootstrap(x, y, seed=1, n_boot=2000)
    rows = paired_bootstrap([mean("m", "v")], {"v": x}, {"v": y}, seed=1, n_boot=2000)[0]
    ok = ~np.isnan(x)
    d = y[ok] - x[ok]
    se = d.std(ddof=0) / math.sqrt(d.size)  # the ideal (infinite-B) bootstrap standard error
    assert fast.delta == pytest.approx(d.mean(), abs=1e-12) and fast.n == ok.sum() and fast.n_boot == 2000
    assert (fast.ci_high - fast.ci_low) == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert (rows.ci_high - rows.ci_low) == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert fast.p_value == pytest.approx(rows.p_value, rel=0.3, abs=0.02)
    assert mean_bootstrap(x, y, seed=1, n_boot=2000) == fast  # seeded
    assert mean_bootstrap(x, y, seed=2, n_boot=2000) != fast


def test_paired_tests_picks_the_test_per_metric():
    rng = np.random.default_rng(2)
    n = 1000
    b = {"hit": (rng.random(n) < 0.6).astype(float), "soft": rng.choice([0.0, 0.5, 1.0], size=n)}
    c = {"hit": np.where(rng.random(n) < 0.1, 1 - b["hit"], b["hit"]), "soft": rng.choice([0.0, 0.5, 1.0], size=n)}
    metrics = [mean("acc", "hit"), mean("soft"), ratio("r", "hit", "soft"), mean("miss", "hit", direction=Direction.LOWER)]
    tests = paired_tests(metrics, b, c, seed=0, n_boot=300)
    assert [t.method for t in tests] == ["mcnemar", "bootstrap", "bootstrap", "mcnemar"]
    assert tests[1].n_boot == 300  # the mean bootstrap draws every replicate (it is cheap)
    assert tests[0] == paired_tests(metrics[:1], b, c, seed=0, n_boot=300)[0]
    assert tests[2] == paired_tests(metrics[2:3], b, c, seed=0, n_boot=300)[0]


def test_settled_metrics_stop_after_the_first_stage_and_others_do_not():
    rng = np.random.default_rng(9)
    n = 2000
    x = rng.random(n)
    same = x + rng.normal(0, 0.05, n)  # no systematic change: p far above alpha
    shifted = x - 0.003 + rng.normal(0, 0.05, n)  # in between: needs every replicate
    m = ratio("r", "v", "one")
    one = np.ones(n)
    settled = paired_bootstrap([m], {"v": x, "one": one}, {"v": same, "one": one}, seed=0, n_boot=1000)[0]
    grey = paired_bootstrap([m], {"v": x, "one": one}, {"v": shifted, "one": one}, seed=0, n_boot=1000)[0]
    assert settled.p_value > 0.2 and settled.n_boot == paired.FIRST_STAGE
    assert 1e-9 < grey.p_value < 0.2 and grey.n_boot == 1000


def test_paired_bootstrap_of_identical_runs_is_exactly_null():
    b, _ = _pair()
    t = paired_bootstrap([mean("soft", "s"), f1("f", "s", "s", "s")], b, dict(b), seed=0, n_boot=200)
    assert all(x.p_value == 1.0 and x.ci_low == 0.0 and x.ci_high == 0.0 for x in t)


def test_cluster_bootstrap_keeps_rows_and_counts_a_redrawn_cluster_twice():
    b, c = _pair(n=600, shift=0.05, seed=5)
    b["hit"], c["hit"] = (b["s"] > 0.5).astype(float), (c["s"] > 0.5).astype(float)
    seen_sizes = []

    def groups_seen(cols):
        keys = np.asarray(cols["group"])
        seen_sizes.append((keys.shape, len(set(keys.tolist()))))
        return float(np.nanmean(cols["hit"]))

    m = Metric("grp", groups_seen, vectorized=False, cluster="group")
    t1 = paired_bootstrap([m], b, c, seed=3, n_boot=50)[0]
    assert t1.method == "cluster-bootstrap" and t1.n_boot == 50
    # every replicate has all 600 rows and 200 distinct cluster labels, although clusters repeat
    assert {s for s in seen_sizes[2:]} == {((600,), 200)}
    seen_sizes.clear()
    assert paired_bootstrap([m], b, c, seed=3, n_boot=50)[0] == t1


def test_vectorized_cluster_metrics_see_one_label_per_drawn_cluster():
    b, c = _pair(n=300, shift=0.05, seed=6)
    shapes = []

    def fn(cols):
        keys = np.asarray(cols["group"])
        if keys.ndim == 2:
            shapes.append((keys.shape, len(set(keys[0].tolist()))))
        return np.nanmean(cols["s"], axis=-1)

    t = paired_bootstrap([Metric("g", fn, cluster="group")], b, c, seed=1, n_boot=120)[0]
    assert t.method == "cluster-bootstrap" and t.n_boot == 120
    assert {s for s in shapes} == {((120, 300), 100)}


def test_holm_adjustment_by_hand():
    adj = holm([0.01, 0.04, 0.03, float("nan")])
    # m = 3: 0.01*3 = 0.03; 0.03*2 = 0.06; max(0.06, 0.04*1) = 0.06
    assert adj[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adj[3])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


# --- tolerances ----------------------------------------------------------------------------------


@pytest.mark.parametrize("specs,task,metric,expected", [
    ([], "t", "accuracy", 0.0),
    (["accuracy=0.01"], "t", "accuracy", 0.01),
    (["accuracy=1pt"], "t", "accuracy", 0.01),
    (["accuracy=0.01,t:accuracy=0.05"], "t", "accuracy", 0.05),
    (["accuracy=0.01", "t:accuracy=0.05"], "u", "accuracy", 0.01),
    (["*=2.5pt"], "t", "f1", 0.025),
    (["*=0.02", "f1=0"], "t", "f1", 0.0),
])
def test_tolerance_lookup(specs, task, metric, expected):
    assert Tolerances.parse(specs).get(task, metric) == pytest.approx(expected)


def test_bad_tolerances_are_reported_together():
    with pytest.raises(ConfigError) as e:
        Tolerances.parse(["accuracy", "f1=-0.1", "x=abc", "ok=0.1"])
    assert len(e.value.problems) == 3


# --- verdicts ------------------------------------------------------------------------------------


def test_identical_runs_pass(world, plugin, tmp_path):
    _, run = world
    base, cur = run("base"), run("cur")
    report = compare(load(base), load(cur), GateConfig(n_boot=NB))
    assert report.exit_code == 0
    assert len(report.verdicts) == 3 * 6
    assert {v.outcome for v in report.verdicts} == {Outcome.PASS}
    assert all(v.reason == "no change" for v in report.verdicts)
    assert gate("--baseline", str(base), "--current", str(cur)) == 0


def test_corrupted_answers_fail_naming_the_corrupted_task(world, plugin):
    correct, run = world
    base = run("base")
    cur = run("cur", {"beta": corrupt(correct["beta"], 0.15, seed=1)})
    report = compare(load(base), load(cur), GateConfig(n_boot=NB))
    assert report.exit_code == 1
    assert report.regressed_tasks == ["beta"]
    v = verdicts(report)
    assert v[("beta", "accuracy")].outcome is Outcome.REGRESSED
    assert v[("beta", "accuracy")].test.method == "mcnemar"
    assert v[("beta", "accuracy")].test.gains == 0 and v[("beta", "accuracy")].test.losses > 50
    assert v[("beta", "soft")].test.method == "bootstrap"
    assert v[("beta", "error_rate")].outcome is Outcome.REGRESSED  # went up; lower is better
    assert all(x.outcome is Outcome.PASS for x in report.verdicts if x.task != "beta")


def test_improvements_are_reported_and_pass(world, plugin):
    correct, run = world
    base = run("base", {"gamma": corrupt(correct["gamma"], 0.2, seed=2)})
    report = compare(load(base), load(run("cur")), GateConfig(n_boot=NB))
    assert report.exit_code == 0
    v = verdicts(report)
    assert v[("gamma", "accuracy")].outcome is Outcome.IMPROVED
    assert v[("gamma", "error_rate")].outcome is Outcome.IMPROVED  # went down
    assert report.count(Outcome.REGRESSED) == 0


def test_changes_inside_tolerance_pass_and_noise_is_not_significant(world, plugin):
    correct, run = world
    base = run("base")
    small = run("small", {"gtask": corrupt(correct["gtask"], 0.01, seed=3)})  # ~6 of 560 right answers
    # default policy: the drop is real but not significant
    report = compare(load(base), load(small), GateConfig(n_boot=NB))
    assert report.exit_code == 0
    assert "not significant" in verdicts(report)[("gtask", "accuracy")].reason
    # tolerance policy: inside a 2-point tolerance passes, a 0.1-point one fails
    inside = GateConfig(n_boot=NB, policy=Policy.TOLERANCE, tolerances=Tolerances.parse(["*=2pt"]))
    assert compare(load(base), load(small), inside).exit_code == 0
    tight = GateConfig(n_boot=NB, policy=Policy.TOLERANCE, tolerances=Tolerances.parse(["*=0.1pt"]))
    assert compare(load(base), load(small), tight).regressed_tasks == ["gtask"]
    # a significant drop inside its tolerance passes under the default policy
    big = run("big", {"gtask": corrupt(correct["gtask"], 0.1, seed=3)})
    assert compare(load(base), load(big), GateConfig(n_boot=NB)).exit_code == 1
    loose = GateConfig(n_boot=NB, tolerances=Tolerances.parse(["gtask:accuracy=10pt", "gtask:error_rate=10pt", "*=20pt"]))
    assert compare(load(base), load(big), loose).exit_code == 0


def test_significance_policy_ignores_tolerance(world, plugin):
    correct, run = world
    base, big = run("base"), run("big", {"gtask": corrupt(correct["gtask"], 0.1, seed=3)})
    cfg = GateConfig(n_boot=NB, policy=Policy.SIGNIFICANCE, tolerances=Tolerances.parse(["*=50pt"]))
    assert compare(load(base), load(big), cfg).regressed_tasks == ["gtask"]


def test_pairing_is_by_uid_not_by_line_order(world, plugin):
    correct, run = world
    shuffled = np.random.default_rng(0).permutation(N)
    base = run("base")
    cur = run("cur", {"beta": corrupt(correct["beta"], 0.15, seed=1)}, order=shuffled)
    in_order = run("cur2", {"beta": corrupt(correct["beta"], 0.15, seed=1)})
    a, b = compare(load(base), load(cur), GateConfig(n_boot=NB)), compare(load(base), load(in_order), GateConfig(n_boot=NB))
    assert [(v.outcome, v.p_adjusted) for v in a.verdicts] == [(v.outcome, v.p_adjusted) for v in b.verdicts]


@pytest.mark.parametrize("change,needle", [
    (dict(status="failed"), "status 'failed'"),
    (dict(digests={"gtask.json": "zzz"}), "different dataset files"),
    (dict(variant="lenient"), "different task variant"),
    (dict(version="4"), "different task version"),
    (dict(n_failed={"beta": 2}), "2 samples failed"),
    (dict(drop_uids=3), "different sample sets: 3 only in the baseline"),
])
def test_fails_closed(world, plugin, change, needle):
    _, run = world
    report = compare(load(run("base")), load(run("cur", **change)), GateConfig(n_boot=NB))
    assert report.exit_code == 2
    text = " ".join(report.problems) + " ".join(v.reason for v in report.verdicts)
    assert needle in text


def test_missing_task_fails_closed_and_is_named(world, plugin, tmp_path):
    correct, _ = world
    def cols(t):
        return scores_from_correct(correct[t], np.random.default_rng(1))

    base = make_run(tmp_path / "base", {t: cols(t) for t in TASKS})
    cur = make_run(tmp_path / "cur", {t: cols(t) for t in TASKS if t != "gamma"})
    report = compare(load(base), load(cur), GateConfig(n_boot=NB))
    assert report.exit_code == 2
    errors = [v for v in report.verdicts if v.outcome is Outcome.ERROR]
    assert {v.task for v in errors} == {"gamma"} and len(errors) == 6
    assert all(v.reason == "task missing from the current run" for v in errors)
    assert gate("--baseline", str(base), "--current", str(cur)) == 2
    assert gate("--baseline", str(base), "--current", str(cur), "--tasks", "gtask,beta") == 0


def test_missing_metric_and_unknown_task_filter_fail_closed(world, plugin, tmp_path):
    correct, _ = world
    cols = {"gtask": scores_from_correct(correct["gtask"], np.random.default_rng(1))}
    base = make_run(tmp_path / "base", cols)
    fewer = {"gtask": [m for m in gate_metrics() if m.name != "f1"]}
    cur = make_run(tmp_path / "cur", cols, metrics=fewer)
    v = verdicts(compare(load(base), load(cur), GateConfig(n_boot=NB)))
    assert v[("gtask", "f1")].outcome is Outcome.ERROR and "metric missing" in v[("gtask", "f1")].reason
    r = compare(load(base), load(base), GateConfig(n_boot=NB, tasks=("gtask", "nope")))
    assert r.exit_code == 2 and "nope" in r.problems[0]


def test_unreadable_records_fail_closed_with_junit(world, tmp_path):
    _, run = world
    cur = run("cur")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    junit = tmp_path / "j.xml"
    assert gate("--baseline", str(bad), "--current", str(cur), "--junit", str(junit)) == 2
    root = ET.parse(junit).getroot()
    assert root.get("errors") == "1" and root.find(".//error").get("type") == "cannot-compare"
    assert "not valid JSON" in root.find(".//error").get("message")
    assert gate("--baseline", str(tmp_path / "nowhere"), "--current", str(cur)) == 2


def test_without_the_plugin_metrics_fall_back_to_column_means(world, tmp_path):
    correct, run = world  # no `plugin` fixture: gtask, beta and gamma are not installed tasks
    base = run("base")
    cur = run("cur", {"beta": corrupt(correct["beta"], 0.15, seed=1)})
    report = compare(load(base), load(cur), GateConfig(n_boot=NB))
    v = verdicts(report)
    acc = v[("beta", "accuracy")]
    assert acc.outcome is Outcome.REGRESSED and acc.test.method == "mcnemar"
    assert any("recomputed as the per-sample mean of column 'accuracy'" in n for n in acc.notes)
    # precision is sum(tp)/sum(pred): no column of that name, so no test; it dropped -> cannot compare
    prec = v[("beta", "precision")]
    assert prec.outcome is Outcome.ERROR and "no per-sample column 'precision'" in prec.reason
    # error_rate went up: without the plugin "higher is better" is assumed, so it reads as an improvement
    assert v[("beta", "error_rate")].outcome is Outcome.IMPROVED
    assert report.exit_code == 2


def test_samples_that_do_not_reproduce_the_record_are_not_tested(world, plugin, tmp_path):
    correct, run = world
    base = run("base")
    cur = run("cur", {"beta": corrupt(correct["beta"], 0.15, seed=1)})
    rec = json.loads((cur / "results.json").read_text())
    rec["tasks"]["beta"]["metrics"]["accuracy"]["value"] -= 0.001  # record and samples disagree
    (cur / "results.json").write_text(json.dumps(rec))
    report = compare(load(base), load(cur), GateConfig(n_boot=NB))
    v = verdicts(report)[("beta", "accuracy")]
    assert v.outcome is Outcome.ERROR and "the record (results.json) says" in v.reason
    assert str(cur) in v.reason and report.exit_code == 2


def test_no_policy_gates_records_alone(world, plugin, tmp_path):
    """Every verdict is recomputed from per-sample scores: without them no policy can compare."""
    correct, run = world
    base = run("base", samples=False)
    cur = run("cur", {"beta": corrupt(correct["beta"], 0.15, seed=1)}, samples=False)
    for policy in Policy:
        report = compare(load(base), load(cur), GateConfig(n_boot=NB, policy=policy))
        assert report.exit_code == 2 and "no per-sample scores" in report.verdicts[0].reason
    with_samples = (run("base2"), run("cur2", {"beta": corrupt(correct["beta"], 0.15, seed=1)}))
    tol = compare(load(with_samples[0]), load(with_samples[1]),
                  GateConfig(n_boot=NB, policy=Policy.TOLERANCE, tolerances=Tolerances.parse(["*=1pt"])))
    assert tol.regressed_tasks == ["beta"]
    assert verdicts(tol)[("beta", "error_rate")].outcome is Outcome.REGRESSED  # direction from the plugin


# --- outputs ---------------------------------------------------------------------------------------


def test_junit_xml_has_the_usual_shape_and_counts(world, plugin, tmp_path):
    correct, run = world
    base = run("base")
    cur = run("cur", {"beta": corrupt(correct["beta"], 0.15, seed=1)}, digests={"gamma.json": "x"})
    junit, summary = tmp_path / "out" / "gate.xml", tmp_path / "out" / "gate.md"
    code = gate("--baseline", str(base), "--current", str(cur), "--junit", str(junit), "--summary", str(summary))
    assert code == 2  # gtask and beta carry digest 'x' too? no: only the digest map differs for every task
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["gtask", "beta", "gamma"]
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in suites:
        cases = s.findall("testcase")
        assert [c.get("name") for c in cases] == [m.name for m in gate_metrics()]
        assert all(c.get("classname") == f"molmo-eval.gate.{s.get('name')}" and c.get("time") for c in cases)
        counts = {"tests": len(cases), "failures": sum(c.find("failure") is not None for c in cases),
                  "errors": sum(c.find("error") is not None for c in cases),
                  "skipped": sum(c.find("skipped") is not None for c in cases)}
        assert {k: int(s.get(k)) for k in counts} == counts
        for k in total:
            total[k] += counts[k]
        assert s.find("properties/property[@name='policy']").get("value") == "both"
    assert {k: int(root.get(k)) for k in total} == total


def test_junit_marks_regressions_as_failures(world, plugin, tmp_path):
    correct, run = world
    report = compare(load(run("base")), load(run("cur", {"beta": corrupt(correct["beta"], 0.15, seed=1)})),
                     GateConfig(n_boot=NB))
    root = ET.fromstring(junit_xml(report))
    failed = {(c.get("classname"), c.get("name")) for c in root.iter("testcase") if c.find("failure") is not None}
    assert ("molmo-eval.gate.beta", "accuracy") in failed
    assert {cls for cls, _ in failed} == {"molmo-eval.gate.beta"}
    f = root.find(".//testcase[@name='accuracy']/failure")
    assert f is not None and f.get("type") == "regression"
    assert int(root.get("failures")) == len(failed) and root.get("errors") == "0"


def test_markdown_summary_content(world, plugin, tmp_path):
    correct, run = world
    report = compare(load(run("base")), load(run("cur", {"beta": corrupt(correct["beta"], 0.15, seed=1)})),
                     GateConfig(n_boot=NB))
    md = markdown(report)
    lines = md.splitlines()
    assert lines[0].startswith("## ❌ molmo-eval gate: regression") and "beta" in lines[0]
    assert "### ❌ Regressions" in md and "<details>" in md and "</details>" in md
    tables = [ln for ln in lines if ln.startswith("|")]
    widths = {ln.replace("\\|", "").count("|") for ln in tables}
    assert widths == {10}  # 9 cells per row, header and separator included
    reg = [ln for ln in tables if ln.startswith("| beta | accuracy |")]
    assert len(reg) == 2  # once in Regressions (with its reason), once in the full table
    b, c = verdicts(report)[("beta", "accuracy")].baseline, verdicts(report)[("beta", "accuracy")].current
    assert f"{100 * b:.2f}" in reg[0] and f"{100 * c:.2f}" in reg[0] and f"{100 * (c - b):+.2f} pt" in reg[0]
    assert "fell" in reg[0] and "significant" in reg[0]
    err = [ln for ln in tables if ln.startswith("| beta | error_rate |")][0]
    assert "rose" in err and "(lower is better)" in err
    ok = markdown(compare(load(run("b2")), load(run("c2")), GateConfig(n_boot=NB)))
    assert ok.startswith("## ✅ molmo-eval gate: pass") and "Regressions" not in ok
    # it renders: CommonMark with tables (markdown-it-py, which rich depends on) finds both tables
    from markdown_it import MarkdownIt
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert html.count("<table>") == 2 and "<td>beta</td>" in html and "<details>" in html
    assert html.count("<tr>") == 2 * 1 + len(report.verdicts) + report.count(Outcome.REGRESSED)


def test_cli_writes_summary_and_quiet_line(world, plugin, tmp_path, capsys):
    correct, run = world
    base, cur = run("base"), run("cur", {"gamma": corrupt(correct["gamma"], 0.2, seed=4)})
    summary = tmp_path / "s.md"
    assert gate("--baseline", str(base), "--current", str(cur), "--summary", str(summary), "--quiet") == 1
    out = capsys.readouterr().out.strip().splitlines()
    n_reg = compare(load(base), load(cur), GateConfig(n_boot=NB)).count(Outcome.REGRESSED)
    assert n_reg >= 2  # accuracy and error_rate at least (McNemar on 112 flipped answers)
    assert out == [f"molmo-eval gate: regression: {n_reg} metrics regressed in gamma (exit 1)"]
    assert summary.read_text().startswith("## ❌ molmo-eval gate: regression")
    assert gate("--baseline", str(base), "--current", str(cur)) == 1
    table = capsys.readouterr().out
    assert "gamma" in table and "regressed" in table and "McNemar" in table


def test_cli_rejects_bad_flags_all_at_once(world, tmp_path):
    _, run = world
    base = run("base")
    with pytest.raises(ConfigError) as e:
        gate("--baseline", str(base), "--current", str(base), "--alpha", "2", "--tolerance", "x", "--n-boot", "5")
    assert len(e.value.problems) == 3


# --- baseline files --------------------------------------------------------------------------------


def test_update_baseline_writes_a_self_contained_file_that_gates(world, plugin, tmp_path):
    correct, run = world
    first = run("first")
    bl = tmp_path / "ci" / "baseline.json"
    assert gate("--baseline", str(bl), "--current", str(first), "--update-baseline") == 0
    data = json.loads(bl.read_text())
    assert data[FORMAT_KEY] == 1 and set(data["samples"]) == {"gtask", "beta", "gamma"}
    assert [p.name for p in bl.parent.iterdir()] == ["baseline.json"]  # no temporary files left
    loaded, direct = load(bl), load(first)
    for t in direct.rows:
        assert list(loaded.rows[t].uids) == list(direct.rows[t].uids)
        for k, v in direct.rows[t].cols.items():
            w = loaded.rows[t].cols[k]
            assert v.dtype == w.dtype and (np.array_equal(v, w, equal_nan=True) if v.dtype.kind == "f"
                                           else v.tolist() == w.tolist())
    assert gate("--baseline", str(bl), "--current", str(first)) == 0
    worse = run("worse", {"beta": corrupt(correct["beta"], 0.15, seed=1)})
    assert gate("--baseline", str(bl), "--current", str(worse)) == 1
    # accepting the worse run as the new baseline: shown, written, exit 0
    assert gate("--baseline", str(bl), "--current", str(worse), "--update-baseline") == 0
    assert gate("--baseline", str(bl), "--current", str(worse)) == 0


def test_update_baseline_refuses_failed_runs_and_run_directories(world, tmp_path):
    _, run = world
    bl = tmp_path / "baseline.json"
    failed = run("failed", status="failed")
    assert gate("--baseline", str(bl), "--current", str(failed), "--update-baseline") == 2
    assert not bl.exists()
    ok = run("ok")
    with pytest.raises(ConfigError):
        gate("--baseline", str(ok), "--current", str(ok), "--update-baseline")


def test_a_corrupt_baseline_file_names_the_field(tmp_path):
    rows = TaskRows(np.array(["t/v/0", "t/v/1"], dtype=object), {"accuracy": np.array([1.0, np.nan])})
    tr = TaskResult("t", ("v",), "official", "1", 2, {"accuracy": MetricValue(1.0, n=1)}, {})
    rec = RunRecord("r", "2025-01-01T00:00:00Z", "ok", {}, {}, ModelInfo("m", "f", "pixels"), {"t": tr})
    path = write_baseline(tmp_path / "b.json", RunData("src", rec, {"t": rows}))
    assert math.isnan(load(path).rows["t"].cols["accuracy"][1])
    doc = json.loads(path.read_text())
    doc["samples"]["t"]["scores"]["accuracy"] = [1.0]
    path.write_text(json.dumps(doc))
    with pytest.raises(Exception, match=r"samples\.t\.scores\.accuracy.*1 values for 2 uids"):
        load(path)


# --- end to end: runs made by the runner with the scripted model ---------------------------------


def test_runner_made_runs_gate_a_scripted_model_with_corrupted_answers(tmp_path, toy_task):
    """Real runs (runner + toy task + scripted model): the same answers pass; 20% of them corrupted in
    split b fails on the toy task; the baseline file made from the first run gates the same way."""
    from toy import make_toy_data, oracle_text

    import molmo_eval

    root = make_toy_data(tmp_path / "data", n=100, splits=("a", "b"))

    def scripted_run(name: str, corrupt_b: bool) -> Path:
        rows = [{"task": "toy", "split": s, "id": str(i),
                 "text": "wrong" if corrupt_b and s == "b" and i % 5 == 0 else oracle_text(f"toy/{s}/{i}", root)}
                for s in ("a", "b") for i in range(100)]
        script = tmp_path / f"{name}.jsonl"
        script.write_text("\n".join(json.dumps(r) for r in rows))
        out = tmp_path / name
        molmo_eval.evaluate("toy", "scripted", model_args={"outputs": str(script)}, data_root=str(root),
                            output_path=str(out), splits={"toy": ("a", "b")}, cache_dir=str(tmp_path / "cache"))
        return out

    base, same, worse = scripted_run("base", False), scripted_run("same", False), scripted_run("worse", True)
    assert gate("--baseline", str(base), "--current", str(same)) == 0
    report = compare(load(base), load(worse), GateConfig(n_boot=NB))
    assert report.exit_code == 1 and report.regressed_tasks == ["toy"]
    acc = verdicts(report)[("toy", "accuracy")]
    assert (acc.test.method, acc.test.losses, acc.test.gains) == ("mcnemar", 20, 0)
    assert acc.baseline == 1.0 and acc.current == pytest.approx(0.9)
    bl = tmp_path / "baseline.json"
    assert gate("--baseline", str(bl), "--current", str(base), "--update-baseline") == 0
    assert gate("--baseline", str(bl), "--current", str(same)) == 0
    assert gate("--baseline", str(bl), "--current", str(worse)) == 1

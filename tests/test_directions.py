"""Metric directions (higher / lower / none is better) and everything that reads them: the regression
gate, the "best" marks of report tables, and the lmms-eval export.

The scenario of the gate and report tests is POPE's: a baseline model that also says "yes" for a
share of the absent objects (false positives) and a current model that only stops doing that. The
current model is strictly better, and its yes-ratio falls: a number that describes the model and must
never gate it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import molmo_eval
from molmo_eval.core import registry
from molmo_eval.core.metric import Direction
from molmo_eval.gate.baseline import load
from molmo_eval.gate.output import junit_xml
from molmo_eval.gate.verdicts import GateConfig, Outcome, compare
from molmo_eval.models.scripted import ScriptedModel
from molmo_eval.report.build import build_table
from molmo_eval.report.inputs import load_inputs

# The audit of every metric of the seven benchmarks: which way is better. Everything not listed here
# is a rate of right answers (higher is better).
NOT_HIGHER = {
    ("gqa", "distribution"): Direction.LOWER,  # eval.py's chi-square between answer histograms
    ("pope", "yes_ratio"): Direction.NONE,  # share of "yes" predictions: describes, never ranks
}
BUILTIN = ("vqav2", "textvqa", "gqa", "refcoco", "refcoco+", "refcocog", "pointqa", "mmbench", "pope")


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_metric_declares_its_audited_direction(name):
    for m in registry.get_task(name).metrics():
        assert isinstance(m.direction, Direction), (name, m.name)
        assert m.direction is NOT_HIGHER.get((name, m.name), Direction.HIGHER), (name, m.name)
        assert m.higher_is_better is {Direction.HIGHER: True, Direction.LOWER: False}.get(m.direction)


def _pope_run(out: Path, root: Path, false_yes: float) -> Path:
    """A scripted POPE run: right on every question, except that the first ``false_yes`` share of the
    questions about absent objects (label "no") is answered "Yes" (false positives)."""
    task = registry.get_task("pope")
    samples = [s for split in task.default_splits for s in task.load(root / task.data_dir, split)]
    absent = [s.uid for s in samples if s.target["label"] == "no"]
    wrong = set(absent[: int(false_yes * len(absent))])
    label = {s.uid: s.target["label"] for s in samples}

    def fn(req):  # noqa: ANN001 - scripted callable
        return "Yes" if req.uid in wrong or label[req.uid] == "yes" else "No"

    model = ScriptedModel(fn=fn, fingerprint=f"pope-{false_yes}")
    molmo_eval.evaluate("pope", model, data_root=root, output_path=out, use_cache=False, bootstrap=200)
    return out


@pytest.fixture(scope="module")
def pope_runs(tmp_path_factory) -> dict[str, Path]:
    from molmo_eval.data.embedded import default_data_root

    root, d = default_data_root(), tmp_path_factory.mktemp("pope-runs")
    return {"base": _pope_run(d / "base", root, 0.5), "better": _pope_run(d / "better", root, 0.0)}


def test_gate_passes_a_model_that_only_removes_false_positives(pope_runs):
    report = compare(load(pope_runs["base"]), load(pope_runs["better"]), GateConfig())
    by = {v.metric: v for v in report.verdicts}
    assert by["yes_ratio"].current < by["yes_ratio"].baseline  # it fell ...
    assert by["yes_ratio"].outcome is Outcome.REPORTED  # ... and is shown, not gated
    assert by["yes_ratio"].test is None and "not gated" in by["yes_ratio"].reason
    assert by["precision"].outcome is Outcome.IMPROVED and by["accuracy"].outcome is Outcome.IMPROVED
    assert report.count(Outcome.REGRESSED) == 0 and report.exit_code == 0
    # the reverse direction regresses on the rates, still never on yes_ratio
    back = compare(load(pope_runs["better"]), load(pope_runs["base"]), GateConfig())
    assert {v.metric for v in back.verdicts if v.outcome is Outcome.REGRESSED} >= {"accuracy", "precision"}
    assert next(v for v in back.verdicts if v.metric == "yes_ratio").outcome is Outcome.REPORTED
    case = junit_xml(report).split('name="yes_ratio"', 1)[1].split("</testcase>", 1)[0]
    assert "<skipped" in case and "<failure" not in case


def test_a_direction_less_metric_is_never_marked_best(pope_runs):
    table = build_table(load_inputs([str(pope_runs["base"]), str(pope_runs["better"])]), metrics="all")
    col = {c.metric: j for j, c in enumerate(table.columns)}
    assert table.columns[col["yes_ratio"]].direction is Direction.NONE
    assert not any(r.values[col["yes_ratio"]].best for r in table.rows)
    assert [r.values[col["accuracy"]].best for r in table.rows] == [False, True]


def test_lmms_eval_export_has_no_arrow_for_a_direction_less_metric(tmp_path):
    yaml = pytest.importorskip("yaml")
    from molmo_eval.core.config import build
    from molmo_eval.core.types import CoordSpace
    from molmo_eval.interop.lmms_tasks import export_lmms_tasks

    export_lmms_tasks(tmp_path, build(["pope", "gqa"], limit=2), prompt_style="default",
                      coord_space=CoordSpace.BINS)

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    hib = {}
    for name in ("pope", "gqa"):
        doc = yaml.load((tmp_path / f"molmo_{name}.yaml").read_text(), Loader=Loader)
        hib[name] = {m["metric"]: m["higher_is_better"] for m in doc["metric_list"]}
    assert hib["pope"] == {"accuracy": True, "precision": True, "recall": True, "f1": True, "yes_ratio": None}
    assert hib["gqa"]["distribution"] is False and hib["gqa"]["accuracy"] is True
    utils = pytest.importorskip("lmms_eval.utils")  # lmms-eval's own table: arrows from higher_is_better
    result = {"results": {"molmo_pope": {"alias": "molmo_pope", "f1,none": 0.5, "yes_ratio,none": 0.4}},
              "higher_is_better": {"molmo_pope": hib["pope"]}, "versions": {"molmo_pope": "1"},
              "n-shot": {"molmo_pope": 0}}
    rows = [[c.strip() for c in ln.split("|")] for ln in utils.make_table(result).splitlines()]
    arrow = {r[4]: r[5] for r in rows if len(r) > 6 and r[1] == "molmo_pope"}  # metric -> arrow column
    assert arrow == {"f1": "↑", "yes_ratio": ""}


def test_the_gate_reads_directions_from_the_record_when_the_plugin_differs(pope_runs, tmp_path):
    """Runs scored by another version of the pope plugin: its metrics are not used, but the directions
    recorded with the runs (results.json "configs") still keep yes_ratio out of the gate."""
    import json
    import shutil

    sides = {}
    for name in ("base", "better"):
        d = shutil.copytree(pope_runs[name], tmp_path / name)
        data = json.loads((d / "results.json").read_text())
        data["tasks"]["pope"]["version"] = "older"
        (d / "results.json").write_text(json.dumps(data))
        sides[name] = d
    assert json.loads((sides["base"] / "results.json").read_text())["higher_is_better"]["pope"]["yes_ratio"] is None
    report = compare(load(sides["base"]), load(sides["better"]), GateConfig())
    by = {v.metric: v for v in report.verdicts}
    assert by["yes_ratio"].outcome is Outcome.REPORTED and "not gated" in by["yes_ratio"].reason
    assert any("recorded values are shown" in n for n in by["yes_ratio"].notes)
    # the rates have no per-sample column of their name to be recomputed from, and the gate never
    # takes a record's numbers alone (issue 14): those are "cannot compare", never a pass
    assert by["accuracy"].outcome is Outcome.ERROR and "no per-sample column 'accuracy'" in by["accuracy"].reason
    assert report.exit_code == 2 and report.count(Outcome.REGRESSED) == 0
    # without the recorded directions, yes_ratio would be gated as higher-is-better: another error
    data = json.loads((sides["base"] / "results.json").read_text())
    del data["configs"], data["higher_is_better"]
    (sides["base"] / "results.json").write_text(json.dumps(data))
    blind = {v.metric: v for v in compare(load(sides["base"]), load(sides["better"]), GateConfig()).verdicts}
    assert blind["yes_ratio"].outcome is Outcome.ERROR

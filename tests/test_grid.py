"""Ablation grids: the spec, stage-prefix sharing, the cell cache (re-runs free, interrupted grids
resume), the job graph, and executors that agree to the last digit.

Hand numbers for the 3 x 3 x 2 grid (stages 1 / 1+2 / 1+2+3 x three data sizes x pointing on/off):
18 cells. The trainer runs the encoder pre-training (stage 0) before stage 1, so the chains are
0-1, 0-1-2 and 0-1-2-3; without sharing every cell trains its own chain, 6 x (2 + 3 + 4) = 54 stage
trainings. Stage 0 (scenes), stage 1 (captions) and stage 2 (benchmark examples off: captions and
questions) never see a point, so they depend on the data size only (3 + 3 + 3); stage 3 mixes in
pointing data (3 x 2 = 6): 15 trainings, 39 avoided; cells that end in the same checkpoint share one
evaluation, so 12 evaluations.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from pathlib import Path

import pytest

from molmo_eval.core.errors import ConfigError, DataError
from molmo_eval.core.types import MetricValue, ModelInfo, RunRecord, TaskResult
from molmo_eval.grid import driver
from molmo_eval.grid.driver import run_grid
from molmo_eval.grid.executors import Job, JobFailed, LocalExecutor, run_graph
from molmo_eval.grid.jobs import checkpoint_dir
from molmo_eval.grid.plan import POINT_FREE_SOURCES, WORLD_SOURCES, full_images, make_plan
from molmo_eval.grid.record import read_grid
from molmo_eval.grid.spec import DataSize, GridSpec, load_spec
from molmo_eval.run.records import write_record

FULL = ["stages=1,1+2,1+2+3", "data=0.25,0.5,1", "pointing=on,off"]


def spec_of(flags=FULL, **settings):
    return load_spec(None, flags, {"tasks": "pope", "preset": "tiny", "bench": False, **settings})


# --- the spec ----------------------------------------------------------------------------------


def test_spec_from_toml_with_flags_on_top(tmp_path):
    cfg = tmp_path / "grid.toml"
    cfg.write_text(
        'preset = "tiny"\ntasks = ["pope", "refcoco"]\nlimit = 20\nbench = false\n'
        '[grid]\nstages = ["1", "1+2+3"]\ndata = [0.25, 1]\npointing = ["on", "off"]\n'
    )
    spec = load_spec(cfg, ["data=50%,100%", "seed=0,1"], {"threads": 2})
    assert spec.stages == ((1,), (1, 2, 3))
    assert [d.fraction for d in spec.data] == [0.5, 1.0]
    assert spec.pointing == ("on", "off") and spec.seed == (0, 1)
    assert (spec.tasks, spec.limit, spec.threads, spec.preset) == (("pope", "refcoco"), 20, 2, "tiny")
    assert len(spec.cells()) == 2 * 2 * 2 * 2
    assert GridSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.varying == ("stages", "data", "pointing", "seed")


def test_spec_problems_are_reported_together():
    with pytest.raises(ConfigError) as e:
        load_spec(None, ["stages=1,3+1", "data=abc,0", "pointing=maybe", "colour=red"], {})
    text = str(e.value)
    for part in ("stages=3+1", "data=abc", "data=0", "pointing=maybe", "unknown axis", "--tasks"):
        assert part in text, part


def test_data_sizes_are_fractions_or_image_counts():
    assert DataSize.parse("25%").fraction == 0.25
    assert DataSize.parse("2").fraction == 2.0  # plain numbers are fractions of the schedule
    assert DataSize.parse("12img").count == 12
    # the tiny preset: stage 0 takes 4 steps of 4 images, stages 1-3 4 steps of 2 images each: 40
    assert full_images("tiny") == 4 * 4 + 3 * 4 * 2
    assert DataSize.parse("20img").resolve(40) == 0.5
    for bad in ("-1", "0img", "11", "lots"):
        with pytest.raises(ConfigError):
            DataSize.parse(bad)


# --- the plan ----------------------------------------------------------------------------------


def test_stage_prefix_sharing_in_the_3x3x2_grid():
    plan = make_plan(spec_of())
    assert len(plan.cells) == 18 and plan.naive_trainings == 54
    by_stage = {k: sum(s.stage == k for s in plan.stages.values()) for k in (0, 1, 2, 3)}
    assert by_stage == {0: 3, 1: 3, 2: 3, 3: 6}
    assert plan.avoided == 39 and len(plan.evals) == 12
    chains = {(c.coords()["stages"], c.coords()["data"], c.pointing): plan.chains[c] for c in plan.cells}
    for (_, data, pointing), chain in chains.items():
        full = chains[("1+2+3", data, pointing)]
        assert chain == full[: len(chain)]  # stage 1 of 1+2+3 is stage 1 of 1
    assert chains[("1", "1", "on")] == chains[("1", "1", "off")]
    assert chains[("1+2+3", "1", "on")][-1] != chains[("1+2+3", "1", "off")][-1]
    assert chains[("1", "0.25", "on")] != chains[("1", "0.5", "on")]


def test_benchmark_examples_share_stage_2_only_when_their_content_agrees():
    spec = spec_of(bench=True)
    first = make_plan(spec)  # examples not built yet: pointing on and off count as different
    assert len(first.stages) == 3 + 3 + 6 + 6
    on, off = sorted(first.bench, key=lambda k: not first.bench[k].pointing)
    same = make_plan(spec, {on: {"bench_ask": "a1", "bench_point": "p1"}, off: {"bench_ask": "a1"}})
    assert len(same.stages) == 3 + 3 + 3 + 6
    differ = make_plan(spec, {on: {"bench_ask": "a1", "bench_point": "p1"}, off: {"bench_ask": "a2"}})
    assert len(differ.stages) == 3 + 3 + 6 + 6


def test_keys_follow_every_setting_that_changes_the_weights():
    base = make_plan(spec_of(["stages=1+2+3", "data=1", "pointing=on"]))
    (cell,) = base.cells
    for flags, settings in (
        (["stages=1+2+3", "data=0.5", "pointing=on"], {}),
        (["stages=1+2+3", "data=1", "pointing=on", "seed=1"], {}),
        (["stages=1+2+3", "data=1", "pointing=on"], {"threads": 2}),
    ):
        other = make_plan(spec_of(flags, **settings))
        assert other.chains[other.cells[0]][0] != base.chains[cell][0], (flags, settings)
    limited = make_plan(spec_of(["stages=1+2+3", "data=1", "pointing=on"], limit=5))
    assert limited.chains[limited.cells[0]] == base.chains[cell]  # same training ...
    assert limited.cell_eval[limited.cells[0]] != base.cell_eval[cell]  # ... another evaluation


def test_caption_and_question_streams_never_mention_points():
    """Why stages 1 and 2 are shared by pointing on and off (POINT_FREE_SOURCES)."""
    from molmo_eval.reference_model.world import training

    for name in sorted(POINT_FREE_SOURCES & WORLD_SOURCES):
        for ex in itertools.islice(training.STREAMS[name](0), 300):
            assert "<point" not in ex.prompt + ex.answer, (name, ex.prompt, ex.answer)
    pts = [ex for ex in itertools.islice(training.STREAMS["point"](0), 50) if "<point" in ex.answer]
    assert pts  # the pointing stream does, so stage 3 depends on the switch


# --- the job graph -------------------------------------------------------------------------------


def _append(log: list, name: str, fail: bool = False) -> str:
    if fail:
        raise RuntimeError(f"{name} broke")
    log.append(name)
    return name


def test_run_graph_runs_dependencies_first_and_stops_at_a_failure():
    log: list[str] = []
    jobs = [
        Job("c", _append, (log, "c"), ("b",)),
        Job("b", _append, (log, "b"), ("a",)),
        Job("a", _append, (log, "a")),
        Job("x", _append, (log, "x"), cost=0.5),
    ]
    res = run_graph(jobs, LocalExecutor())
    assert log == ["a", "b", "c", "x"]  # the longest chain first
    assert res.results == {"a": "a", "b": "b", "c": "c", "x": "x"}
    log.clear()
    jobs = [
        Job("a", _append, (log, "a", True), label="job a"),
        Job("b", _append, (log, "b"), ("a",)),
        Job("x", _append, (log, "x"), cost=0.1),
    ]
    with pytest.raises(JobFailed, match="job a failed .*a broke.*2 job\\(s\\) did not run"):
        run_graph(jobs, LocalExecutor())
    assert log == []  # nothing after the failure is submitted


# --- running a grid with stand-in jobs (fast) ----------------------------------------------------


class Fakes:
    """Stand-ins for training and evaluation that leave the files the grid looks for."""

    def __init__(self, fail: str | None = None):
        self.trained: list[str] = []
        self.evaluated: list[str] = []
        self.fail = fail

    def train(self, job, cache, quiet=False):
        root = Path(cache)
        if job.parent is not None:
            assert (checkpoint_dir(root, job.parent) / "model.safetensors").is_file(), "parent first"
        if job.key == self.fail:
            raise RuntimeError("killed")
        d = checkpoint_dir(root, job.key)
        d.mkdir(parents=True)
        (d / "model.safetensors").write_text("w")
        (d / "config.json").write_text("{}")
        self.trained.append(job.key)
        return {"cached": False, "seconds": 0.0}

    def evaluate(self, job, cache, out, quiet=True):
        assert (checkpoint_dir(Path(cache), job.train) / "config.json").is_file()
        value = 0.1 * int(job.train[5]) + 0.01 * len(self.evaluated)
        tr = TaskResult(
            "pope",
            ("random",),
            "official",
            "1",
            10,
            {"f1": MetricValue(value, None, None, 10)},
            {},
            primary_metric="f1",
        )
        write_record(
            Path(out) / job.run_name,
            RunRecord(
                job.key,
                "2024-01-01T00:00:00+00:00",
                "ok",
                {},
                {},
                ModelInfo("reference", job.train, "bins"),
                {"pope": tr},
            ),
        )
        self.evaluated.append(job.key)
        return {"cached": False, "seconds": 0.0}


@pytest.fixture
def fakes(monkeypatch):
    f = Fakes()
    monkeypatch.setattr(driver, "train_stage", f.train)
    monkeypatch.setattr(driver, "evaluate_cell", f.evaluate)
    monkeypatch.setattr("molmo_eval.data.embedded.default_data_root", lambda: Path("."))
    return f


SMALL = ["stages=1,1+2,1+2+3", "data=0.5,1", "pointing=on,off"]  # 12 cells: 2+2+2+4 stages, 8 evaluations


def test_a_finished_grid_reruns_for_free_and_a_damaged_one_redoes_only_the_gap(tmp_path, fakes):
    spec, out = spec_of(SMALL), tmp_path / "g"
    st = run_grid(spec, out, LocalExecutor())
    assert (st.trained, st.evaluated) == (10, 8) and len(fakes.trained) == 10
    rec = read_grid(out)
    assert rec.complete and len(rec.cells) == 12
    assert rec.cells[0].record.tasks["pope"].metrics["f1"].n == 10
    shared = [c for c in rec.cells if c.coords["stages"] == "1" and c.coords["data"] == "1"]
    assert len(shared) == 2 and shared[0].run_dir == shared[1].run_dir  # pointing on/off: one evaluation
    st = run_grid(spec, out, LocalExecutor())
    assert (st.trained, st.evaluated, st.eval_cached) == (0, 0, 8) and len(fakes.trained) == 10
    # lose one stage-3 checkpoint and its evaluation: exactly that stage and that evaluation run again
    plan = make_plan(spec)
    cell = next(
        c
        for c in plan.cells
        if c.coords() == {"stages": "1+2+3", "data": "1", "pointing": "off", "captions": "clean", "seed": "0"}
    )
    key = plan.chains[cell][-1]
    shutil.rmtree(checkpoint_dir(out / "cache", key))
    shutil.rmtree(out / plan.evals[plan.cell_eval[cell]].run_name)
    st = run_grid(spec, out, LocalExecutor())
    assert (st.trained, st.evaluated) == (1, 1) and fakes.trained[-1] == key
    # a lost intermediate checkpoint whose cells are all evaluated is not retrained
    shutil.rmtree(checkpoint_dir(out / "cache", plan.chains[cell][2]))
    st = run_grid(spec, out, LocalExecutor())
    assert (st.trained, st.evaluated) == (0, 0)


def test_an_interrupted_grid_resumes_without_redoing_finished_jobs(tmp_path, fakes, monkeypatch):
    spec, out = spec_of(SMALL), tmp_path / "g"
    plan = make_plan(spec)
    victim = next(k for k, s in plan.stages.items() if s.stage == 3)
    fakes.fail = victim
    with pytest.raises(JobFailed, match="killed"):
        run_grid(spec, out, LocalExecutor())
    done_before = list(fakes.trained)
    partial = read_grid(out)
    assert not partial.complete and len(partial.cells) < 12
    fakes.fail = None
    run_grid(spec, out, LocalExecutor())
    assert set(done_before).isdisjoint(fakes.trained[len(done_before) :])
    assert len(fakes.trained) == 10 and read_grid(out).complete


def test_read_grid_names_the_file_on_bad_input(tmp_path):
    bad = tmp_path / "grid.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="grid.json"):
        read_grid(tmp_path)
    bad.write_text(json.dumps({"molmo_eval_grid": 99}))
    with pytest.raises(DataError, match="newer molmo-eval"):
        read_grid(bad)


def test_ablate_dry_run_prints_the_plan(capsys):
    from molmo_eval.cli import main

    args = [
        "ablate",
        *[x for f in FULL for x in ("--grid", f)],
        "--tasks",
        "pope",
        "--preset",
        "tiny",
        "--bench-data",
        "off",
        "--out",
        "unused",
        "--dry-run",
    ]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == (
        "18 cells; 15 stage trainings (stage 0: 3, stage 1: 3, stage 2: 3, "
        "stage 3: 6) instead of 54 without prefix sharing (39 avoided); "
        "12 evaluations"
    )


# --- the real thing: tiny models, trained and evaluated ------------------------------------------

REAL = ["stages=1,1+2+3", "data=0.5,1", "pointing=on,off"]


def _real_spec():
    return spec_of(REAL, limit=2, bootstrap=50)


def _fingerprint(out: Path) -> dict:
    """Per cell: the metrics, every sample's output and scores, and the digest of the weights."""
    import hashlib

    from molmo_eval.report.inputs import read_sample_lines

    rec = read_grid(out)
    res = {}
    for c in rec.cells:
        ckpt = Path(c.record.model.args["checkpoint"]) / "model.safetensors"
        res[c.label] = (
            {t: {k: v.to_json() for k, v in tr.metrics.items()} for t, tr in c.record.tasks.items()},
            [(ln["uid"], ln["output"], ln["scores"]) for ln in read_sample_lines(c.run_dir)],
            hashlib.sha256(ckpt.read_bytes()).hexdigest(),
        )
    return res


@pytest.mark.slow
def test_executors_agree_to_the_last_digit(tmp_path):
    """local, a process pool and a Ray cluster started here give the same weights, outputs and numbers."""
    from molmo_eval.grid.executors import PoolExecutor, RayExecutor

    spec = _real_spec()
    t0 = time.perf_counter()
    run_grid(spec, tmp_path / "local", LocalExecutor())
    local_s = time.perf_counter() - t0
    want = _fingerprint(tmp_path / "local")
    assert len(want) == 8 and len({w[2] for w in want.values()}) == 6  # 2 x stage 1 + 4 x stage 3 checkpoints
    pool = PoolExecutor(2)
    try:
        run_grid(spec, tmp_path / "pool", pool)
    finally:
        pool.close()
    assert _fingerprint(tmp_path / "pool") == want
    pytest.importorskip("ray", reason="the Ray executor needs the 'ray' extra")
    ray = RayExecutor(num_cpus=2)
    try:
        run_grid(spec, tmp_path / "ray", ray)
    finally:
        ray.close()
    assert _fingerprint(tmp_path / "ray") == want
    assert local_s > 0


@pytest.mark.slow
def test_a_real_tiny_grid_reruns_without_training_or_model_calls(tmp_path):
    spec = _real_spec()
    first = run_grid(spec, tmp_path / "g", LocalExecutor())
    assert (first.trained, first.evaluated) == (10, 6)
    again = run_grid(spec, tmp_path / "g", LocalExecutor())
    assert (again.trained, again.evaluated, again.eval_cached) == (0, 0, 6)
    # a new grid folder sharing the cache retrains nothing and evaluates from the response cache
    other = run_grid(spec, tmp_path / "h", LocalExecutor(), cache=tmp_path / "g" / "cache")
    assert (other.trained, other.evaluated) == (0, 6)
    calls = [c.record.counts.get("model_calls") for c in read_grid(tmp_path / "h").cells]
    assert calls == [0] * 8


def test_ablate_runs_a_grid_and_prints_its_table(tmp_path, fakes, capsys):
    from molmo_eval.cli import main

    out = tmp_path / "g"
    args = [
        "ablate",
        "--grid",
        "stages=1,1+2+3",
        "--grid",
        "pointing=on,off",
        "--tasks",
        "pope",
        "--preset",
        "tiny",
        "--bench-data",
        "off",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    assert (
        read_grid(out).complete and len(fakes.trained) == 1 + 1 + 1 + 2
    )  # stages 0, 1, 2 shared; 3 twice
    table = capsys.readouterr().out
    assert "Stages" in table and "Pointing" in table and "POPE" in table


def test_the_ray_executor_names_its_extra_when_ray_is_missing(monkeypatch):
    import sys

    from molmo_eval.core.errors import MissingDependency
    from molmo_eval.grid.executors import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependency, match=r"molmo-eval\[ray\]"):
        make_executor("ray")

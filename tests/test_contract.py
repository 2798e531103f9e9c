"""The task contract, checked for every registered task (the seven benchmark plugins and any
third-party task installed beside them) on the embedded mini world."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from molmo_eval.core import registry
from molmo_eval.core.errors import DataError, UnknownName
from molmo_eval.core.metric import Direction
from molmo_eval.core.task import ParseContext, Task
from molmo_eval.core.types import Answer, AnswerKind, CoordSpace, Generation, Sample
from molmo_eval.metrics import stats
from molmo_eval.run.scoring import score_one

TASKS = registry.task_names()


@pytest.fixture(scope="session")
def mini_root() -> Path:
    from molmo_eval.data.embedded import default_data_root

    return default_data_root()


@pytest.fixture(scope="module", params=TASKS)
def task(request) -> Task:
    return registry.get_task(request.param)


def test_all_seven_benchmarks_are_registered():
    assert {"vqav2", "gqa", "textvqa", "refcoco", "refcoco+", "refcocog", "pointqa", "mmbench", "pope"} <= set(TASKS)


def test_declarations(task):
    assert isinstance(task, Task) and dataclasses.is_dataclass(task)
    assert task.description and "\n" not in task.description
    assert task.splits and set(task.default_splits) <= set(task.splits) and task.default_splits
    assert task.variants[0] == "official" and task.variant == "official"
    assert isinstance(task.answer_kind, AnswerKind) and task.data_dir
    names = [m.name for m in task.metrics()]
    assert len(names) == len(set(names)) and task.primary_metric in names
    assert set(task.split_metrics()) <= set(names)


def test_variants_are_replacements(task):
    for v in task.variants:
        other = task.with_variant(v)
        assert type(other) is type(task) and other.variant == v
    with pytest.raises(UnknownName):
        task.with_variant("no-such-variant")


def test_missing_files_are_data_errors(task, tmp_path):
    with pytest.raises(DataError) as e:
        task.load(tmp_path, task.default_splits[0])
    assert str(tmp_path) in str(e.value)


def test_unknown_split_is_refused(task):
    with pytest.raises(UnknownName):
        task.check_split("no-such-split")


def _samples(task: Task, root: Path, n: int = 24) -> list[Sample]:
    out = []
    for split in task.default_splits:
        out += task.load(root / task.data_dir, split)[:n]
    return out


def test_loads_mini_world_samples(task, mini_root):
    d = mini_root / task.data_dir
    for split in task.default_splits:
        samples = task.load(d, split)
        assert samples, f"{task.name}/{split} is empty"
        assert len({s.id for s in samples}) == len(samples)
        assert all(s.task == task.name and s.split == split for s in samples)
        for f in task.data_files(d, split):
            assert f.is_file()
    for s in _samples(task, mini_root, 5):
        assert s.image is not None
        if s.image.path is not None:
            assert Path(s.image.path).is_file() and Path(s.image.path).is_relative_to(mini_root)
        for style in ("default", "molmo"):
            for space in CoordSpace:
                assert task.prompt(s, style, space=space).strip()


def test_unparseable_and_failed_outputs_score_as_wrong(task, mini_root):
    samples = _samples(task, mini_root)
    ctx = ParseContext(CoordSpace.PIXELS, (100, 100))
    for s in samples:
        ans = task.parse(s, Generation(""), ctx)
        assert isinstance(ans, Answer)
        failed = task.failed_score(s)
        assert failed.uid == s.uid
        primary = next(m for m in task.metrics() if m.name == task.primary_metric)
        col = primary.count or primary.name
        if col in failed.values:  # a failed answer never earns the headline metric
            assert math.isnan(failed.values[col]) or failed.values[col] == 0.0


def test_aggregate_produces_every_declared_metric(task, mini_root):
    samples = _samples(task, mini_root)
    scores = [score_one(task, s, Generation("yes"), CoordSpace.PERCENT, (100, 100))[1] for s in samples]
    final = task.finalize(samples, scores)
    overall, groups = stats.summarize(task.metrics(), stats.columns(samples, final), task.breakdowns, seed=0,
                                      label=task.name, n_boot=20)
    assert set(overall) == {m.name for m in task.metrics()}
    rates = {m.name for m in task.metrics() if m.direction is not Direction.LOWER}  # fractions in [0, 1]
    for name, mv in overall.items():
        assert math.isnan(mv.value) or name not in rates or 0.0 <= mv.value <= 1.0
    for g in task.breakdowns:
        assert g in groups

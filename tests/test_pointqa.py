"""PointQA: pointing (Hungarian P/R/F1 with masks or boxes, zero targets, counting) and Point-and-Ask."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from molmo_eval.core.errors import DataError
from molmo_eval.core.task import ParseContext
from molmo_eval.core.types import AnswerKind, CoordSpace, Generation
from molmo_eval.metrics import stats
from molmo_eval.parsing.count import parse_count
from molmo_eval.tasks.pointqa import PointQA, normalize_answer

W, H = 100, 50


def _rle_rect(x1, y1, x2, y2):
    m = np.zeros((H, W), np.uint8)
    m[y1:y2, x1:x2] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": [H, W], "counts": r["counts"].decode("ascii")}


POINTING = [
    # single target, mask = pixels x 10..19, y 10..19 (RLE)
    {"id": "s1", "image": "images/a.jpg", "image_width": W, "image_height": H, "label": "cup",
     "question": "Point to the cup.", "points": [[15, 15]], "masks": [_rle_rect(10, 10, 20, 20)],
     "boxes": [[10, 10, 20, 20]], "count": 1, "kind": "single"},
    # two targets: polygon masks (x 40..50) and box only for the second
    {"id": "m1", "image": "images/a.jpg", "image_width": W, "image_height": H, "label": "dog",
     "question": "Point to the dogs.", "points": [[45, 25], [80, 25]],
     "masks": [[[40, 20, 50, 20, 50, 30, 40, 30]], None], "boxes": [[40, 20, 50, 30], [75, 20, 85, 30]],
     "count": 2, "kind": "multi"},
    {"id": "z1", "image": "images/a.jpg", "image_width": W, "image_height": H, "label": "cat",
     "question": "Point to the cats.", "points": [], "masks": [], "boxes": [], "count": 0, "kind": "zero"},
    {"id": "c1", "image": "images/a.jpg", "image_width": W, "image_height": H, "label": "dog",
     "question": "How many dogs are there?", "points": [[45, 25], [80, 25]], "boxes": [[40, 20, 50, 30],
                                                                                       [75, 20, 85, 30]],
     "count": 2, "kind": "count"},
]
LOCAL = [{"question_id": 7, "image": "images/a.jpg", "image_width": W, "image_height": H,
          "question": "What color is this?", "point": [50, 25], "answer": "red", "answers": ["red", "dark red"]}]
TWICE = [{"question_id": 8, "image": "images/a.jpg", "image_width": W, "image_height": H,
          "question": "How many of these are there?", "point": [10, 10], "answer": "2", "answers": ["2"]}]


def make_pointqa(root: Path, pointing=None) -> Path:
    d = root / "pointqa"
    (d / "images").mkdir(parents=True, exist_ok=True)
    (d / "pixmo_points_eval.jsonl").write_text("\n".join(json.dumps(r) for r in (pointing or POINTING)) + "\n")
    (d / "pointqa_local_test.json").write_text(json.dumps(LOCAL))
    (d / "pointqa_twice_test.json").write_text(json.dumps(TWICE))
    return d


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_pointqa(tmp_path)


def _values(task, sample, text, space=CoordSpace.PIXELS, **gen):
    answer = task.parse(sample, Generation(text=text, **gen), ParseContext(space, sample.image_size))
    return answer, task.score(sample, answer).values


@pytest.fixture
def by_id(data):
    return {s.id: s for s in PointQA().load(data, "pointing")}


@pytest.mark.parametrize("sid,text,expected", [
    ("s1", "(15, 15)", (1.0, 1.0, 1.0, 1.0)),
    ("s1", "(20.0, 15)", (0.0, 0.0, 0.0, 1.0)),  # col 20 is outside the mask (x 10..19) though on the box border
    ("s1", "(15, 15) (16, 16)", (0.5, 1.0, 2 / 3, 0.0)),  # two points for one target
    ("s1", "There is no cup.", (0.0, 0.0, 0.0, 0.0)),
    ("m1", "(45, 25) (80, 25)", (1.0, 1.0, 1.0, 1.0)),  # polygon mask hit, box-only target hit
    ("m1", "(84.9, 29.9)", (1.0, 0.5, 2 / 3, 0.0)),  # matched to the box-only target, inside its box
    ("m1", "(60, 25) (45, 25)", (0.5, 0.5, 0.5, 1.0)),  # (60, 25) matched to the second target, outside it
    ("z1", "There are none.", (1.0, 1.0, 1.0, 1.0)),  # zero targets, nothing pointed at
    ("z1", "(3, 3)", (0.0, 0.0, 0.0, 0.0)),
    ("c1", "Counting the <points x1=\"45\" y1=\"50\" x2=\"80\" y2=\"50\">dogs</points> shows a total of 2.",
     None, ),
])
def test_pointing_scores(by_id, sid, text, expected):
    task = PointQA()
    space = CoordSpace.PERCENT if "<points" in text else CoordSpace.PIXELS
    _, v = _values(task, by_id[sid], text, space)
    if expected is None:  # percent (45, 50) of 100 x 50 -> (45, 25); (80, 50) -> (80, 25)
        expected = (1.0, 1.0, 1.0, 1.0)
    assert (v["precision"], v["recall"], v["f1"], v["count_correct"]) == pytest.approx(expected)
    assert math.isnan(v["accuracy"])


def test_counts_stated_without_points(by_id):
    a, v = _values(PointQA(), by_id["c1"], "There are two dogs.")
    assert a.kind is AnswerKind.COUNT and a.value == 2
    assert v["count_correct"] == 1.0 and v["recall"] == 0.0
    a, v = _values(PointQA(), by_id["c1"], "I see 3 dogs.")
    assert v["count_correct"] == 0.0


def test_unparseable_pointing_answer(by_id):
    for sid in ("s1", "z1"):
        a, v = _values(PointQA(), by_id[sid], '<point x="?" y="1">cup</point>', CoordSpace.PERCENT)
        assert not a.parse_ok
        assert (v["precision"], v["recall"], v["f1"], v["count_correct"]) == (0.0, 0.0, 0.0, 0.0)
    v = PointQA().failed_score(by_id["z1"]).values
    assert v["f1"] == 0.0


def test_point_and_ask(data):
    task = PointQA()
    local = task.load(data, "local")[0]
    twice = task.load(data, "looktwice")[0]
    for text, ok in [("Red.", 1.0), ("dark red", 1.0), ("The red one", 0.0), ("blue", 0.0), ("", 0.0)]:
        _, v = _values(task, local, text)
        assert v["accuracy"] == ok, text
        assert math.isnan(v["f1"])
    assert _values(task, twice, "Two")[1]["accuracy"] == 1.0
    assert _values(task, twice, "2.")[1]["accuracy"] == 1.0
    assert _values(task, twice, "3")[1]["accuracy"] == 0.0


def test_point_and_ask_prompt_uses_the_model_space(data):
    task = PointQA()
    s = task.load(data, "local")[0]  # point (50, 25) on a 100 x 50 image = 50%, 50%
    assert '<point x="50.0" y="50.0"' in task.prompt(s, "molmo", space=CoordSpace.PERCENT)
    assert "<point> <x_50> <y_50>" in task.prompt(s, "default", space=CoordSpace.BINS)
    assert "(500, 500)" in task.prompt(s, "default", space=CoordSpace.THOUSAND)
    assert "(50, 25)" in task.prompt(s)
    assert "What color is this?" in task.prompt(s)
    pointing = task.load(data, "pointing")[0]
    assert task.prompt(pointing, "molmo") == "Point to the cup."


def test_summary_with_kind_breakdown(data):
    task = PointQA()
    samples = task.load(data, "pointing") + task.load(data, "local")
    texts = ["(15, 15)", "(45, 25)", "none here", "(45, 25) (80, 25)", "red"]
    scores = [task.score(s, task.parse(s, Generation(text=t), ParseContext(CoordSpace.PIXELS, s.image_size)))
              for s, t in zip(samples, texts, strict=True)]
    overall, groups = stats.summarize(task.metrics(), stats.columns(samples, scores), task.breakdowns, seed=0,
                                      label="pointqa", n_boot=100)
    # per example P/R: s1 1/1, m1 1/0.5, z1 1/1, c1 1/1 -> precision 1, recall 3.5/4
    assert overall["precision"].value == pytest.approx(1.0) and overall["precision"].n == 4
    assert overall["recall"].value == pytest.approx(3.5 / 4)
    assert overall["f1"].value == pytest.approx((1 + 2 / 3 + 1 + 1) / 4)
    assert overall["count_accuracy"].value == pytest.approx(3 / 4)  # m1 predicted 1 of 2
    assert overall["accuracy"].value == 1.0 and overall["accuracy"].n == 1
    assert groups["kind"]["multi"]["recall"].value == pytest.approx(0.5)
    assert set(groups["kind"]) == {"single", "multi", "zero", "count"}
    assert set(groups["split"]) == {"pointing", "local"}


def test_read_predictions(data, tmp_path):
    task = PointQA()
    samples = task.load(data, "pointing")
    p = tmp_path / "preds.jsonl"
    p.write_text('{"id": "s1", "points": [[15, 15]]}\n{"id": "z1", "points": []}\n'
                 '{"id": "m1", "text": "(45, 25) (80, 25)"}\n{"id": "other", "points": []}\n')
    preds = task.read_predictions(p, samples)
    assert len(preds) == 3
    ctx = ParseContext(task.prediction_space(), None)
    got = {s.id: task.score(s, task.parse(s, preds[s.uid], ctx)).values["f1"] for s in samples if s.uid in preds}
    assert got == {"s1": 1.0, "z1": 1.0, "m1": 1.0}
    p.write_text('{"id": "s1", "points": [[15]]}\n')
    with pytest.raises(DataError) as e:
        task.read_predictions(p, samples)
    assert e.value.field == "points"
    local = task.load(data, "local")
    p.write_text('{"id": 7, "text": "red"}\n')
    assert task.read_predictions(p, local)[local[0].uid].text == "red"


@pytest.mark.parametrize("mutate,fld", [
    (lambda r: r.pop("points"), "points"),
    (lambda r: r.update(masks=[_rle_rect(0, 0, 1, 1), None]), "masks"),  # 2 masks for 1 target
    (lambda r: r.update(boxes=[[1, 2, 3]]), "boxes"),
    (lambda r: r.update(masks=[None], boxes=[None]), "masks"),  # neither mask nor box
    (lambda r: r.update(count=-1), "count"),
    (lambda r: r.update(image="../../outside.jpg"), "image"),
    (lambda r: r.update(masks=[{"size": [H, W], "counts": 5}]), "masks"),
])
def test_pointing_data_errors(tmp_path, mutate, fld):
    rec = json.loads(json.dumps(POINTING[0]))
    mutate(rec)
    d = make_pointqa(tmp_path, [rec])
    with pytest.raises(DataError) as e:
        PointQA().load(d, "pointing")
    assert e.value.field == fld and "pixmo_points_eval.jsonl" in str(e.value) and "line 1" in str(e.value)


@pytest.mark.parametrize("text,expected", [
    ("3", 3), ("three", 3), ("There are 12 apples.", 12), ("Twenty-one", 21), ("1,000 birds", 1000),
    ("I see two cats and 4 dogs", 4), ("Counting the <points x1=\"1\" y1=\"2\">5 dogs</points> shows a total of 2.", 2),
    ("3.5", None), ("-2", None), ("no dogs", None), ("", None), ("<point> <x_12> <y_40>", None),
])
def test_parse_count(text, expected):
    assert parse_count(text) == expected


@pytest.mark.parametrize("text,expected", [("The Red one!", "red 1"), ("Two", "2"), ("an apple.", "apple")])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected

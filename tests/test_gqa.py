"""The gqa plugin against hand-computed GQA eval.py numbers (accuracy, binary/open, per type,
consistency over entailed questions, chi-square distribution) and its variants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from molmo_eval.core.errors import DataError
from molmo_eval.core.registry import get_task
from molmo_eval.core.task import ParseContext
from molmo_eval.metrics import stats
from molmo_eval.metrics.gqa import chi_square_distribution, prediction_key

# qid: (structural, semantic, gold, global group, balanced, entailed, prediction)
QUESTIONS = {
    "q1": ("verify", "attr", "yes", "g1", True, ["q2", "q3", "q1", "q99"], "yes"),  # q1 itself and q99 skipped
    "q2": ("query", "obj", "red", "g2", True, [], "blue"),
    "q3": ("logical", "attr", "no", "g1", True, [], "yes"),
    "q4": ("query", "rel", "dog", None, True, ["q5"], "dog"),  # entails an unbalanced question
    "q5": ("verify", "attr", "yes", "g1", False, [], "yes"),  # unbalanced: only feeds consistency
    "q6": ("compare", "cat", "yes", "g1", True, ["q1"], "Yes"),  # right only after lower-casing
}


@pytest.fixture()
def gqa_dir(tmp_path: Path) -> Path:
    d = tmp_path / "gqa"
    d.mkdir()
    data = {qid: {"imageId": f"n{i}", "question": f"question {qid}?", "answer": gold, "fullAnswer": gold,
                  "isBalanced": bal, "entailed": ent, "equivalent": [qid],
                  "types": {"structural": st, "semantic": se, "detailed": "x"},
                  "groups": {"global": grp, "local": "l"}, "semantic": [], "semanticStr": ""}
            for i, (qid, (st, se, gold, grp, bal, ent, _)) in enumerate(QUESTIONS.items())}
    (d / "testdev_balanced_questions.json").write_text(json.dumps(data))
    (d / "preds.json").write_text(json.dumps(
        [{"questionId": qid, "prediction": q[-1]} for qid, q in QUESTIONS.items()]
        + [{"questionId": "not-in-split", "prediction": "x"}]))  # eval.py ignores extra predictions
    return d


def _evaluate(gqa_dir: Path, variant: str):
    task = get_task("gqa", variant)
    samples = task.load(gqa_dir, "testdev_balanced")
    preds = task.read_predictions(gqa_dir / "preds.json", samples)
    scores = task.finalize(samples, [task.score(s, task.parse(s, preds[s.uid], ParseContext())) for s in samples])
    return stats.summarize(task.metrics(), stats.columns(samples, scores), task.breakdowns, seed=0, label="gqa",
                           n_boot=100)


def test_gqa_official_numbers(gqa_dir: Path) -> None:
    overall, groups = _evaluate(gqa_dir, "official")
    m = {k: v.value for k, v in overall.items()}
    assert m["accuracy"] == pytest.approx(2 / 5)  # q1, q4 right among the 5 balanced
    assert overall["accuracy"].n == 5
    assert m["binary"] == pytest.approx(1 / 3)  # q1 / q1, q3, q6
    assert m["open"] == pytest.approx(1 / 2)  # q4 / q2, q4
    # correct and with entailed questions: q1 -> q2, q3 both wrong -> 0; q4 -> q5 right -> 1
    assert m["consistency"] == pytest.approx(0.5)
    assert overall["consistency"].n == 2
    # g1: gold yes x2 (q1, q6), no x1 (q3); predicted yes x2, "Yes" x1 -> (2-2)^2/2 + (0-1)^2/1 = 1, size 3
    # g2: gold red, predicted blue -> 1, size 1; weighted (1*3 + 1*1)/4 = 1; eval.py prints 1/100
    assert m["distribution"] * 100 == pytest.approx(1.0 / 100)
    assert groups["structural"]["query"]["accuracy"].value == pytest.approx(0.5)
    assert groups["structural"]["verify"]["accuracy"].value == 1.0
    assert groups["structural"]["verify"]["accuracy"].n == 1  # the unbalanced q5 does not count
    assert groups["semantic"]["attr"]["accuracy"].value == pytest.approx(0.5)
    assert set(groups["semantic"]) == {"attr", "obj", "rel", "cat"}


@pytest.mark.parametrize("variant", ["llava", "lmms-eval"])
def test_gqa_normalizing_variants(gqa_dir: Path, variant: str) -> None:
    overall, _ = _evaluate(gqa_dir, variant)
    m = {k: v.value for k, v in overall.items()}
    assert m["accuracy"] == pytest.approx(3 / 5)  # q6 "Yes" now matches
    assert m["binary"] == pytest.approx(2 / 3)
    assert m["consistency"] == pytest.approx(2 / 3)  # q1 -> 0, q4 -> 1, q6 -> q1 right -> 1
    # g1 predictions now yes x3: (3-2)^2/2 + 1 = 1.5, size 3; g2 1: (4.5 + 1) / 4 = 1.375
    assert m["distribution"] * 100 == pytest.approx(1.375 / 100)


@pytest.mark.parametrize(("variant", "pred", "key"), [
    ("official", "Yes.", "Yes."), ("llava", "Yes..", "yes"), ("llava", ".yes", ".yes"),
    ("lmms-eval", "Yes!", "yes"), ("lmms-eval", "t-shirt", "tshirt"), ("lmms-eval", " yes\n", "yes"), ("lmms-eval", "yes .", "yes "),
])
def test_prediction_keys(variant: str, pred: str, key: str) -> None:
    assert prediction_key(variant, pred) == key


def test_distribution_is_vectorized_over_replicates() -> None:
    rng = np.random.default_rng(0)
    n = 60
    cols = {"dist_gold": rng.integers(0, 8, n).astype(float), "dist_pred": rng.integers(-1, 8, n).astype(float)}
    cols["dist_group"] = np.floor(cols["dist_gold"] / 3)  # codes 0-2 -> group 0, 3-5 -> 1, 6-7 -> 2
    cols["dist_gold"][::7] = np.nan  # questions that do not count
    idx = rng.integers(0, n, size=(5, n))
    batch = chi_square_distribution({k: v[idx] for k, v in cols.items()})
    rows = [chi_square_distribution({k: v[i] for k, v in cols.items()}) for i in idx]
    assert np.allclose(batch, rows)
    assert all(np.isfinite(rows))


def test_failed_generation_is_wrong_everywhere(gqa_dir: Path) -> None:
    task = get_task("gqa")
    samples = task.load(gqa_dir, "testdev_balanced")
    scores = task.finalize(samples, [task.failed_score(s) for s in samples])
    assert all(sc.values["accuracy"] == 0.0 for s, sc in zip(samples, scores, strict=True) if s.target["balanced"])
    assert all(np.isnan(sc.values["consistency"]) for sc in scores)


def test_gqa_load_and_errors(gqa_dir: Path, tmp_path: Path) -> None:
    task = get_task("gqa")
    s = task.load(gqa_dir, "testdev_balanced")[0]
    assert s.id == "q1" and s.meta == {"structural": "verify", "semantic": "attr"}
    assert s.image is not None and s.image.path == str(gqa_dir.absolute() / "images/n0.jpg")
    assert task.prompt(s, "molmo") == "gqa: question q1?"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "testdev_balanced_questions.json").write_text(json.dumps({"7": {"imageId": "n", "question": "?",
                                                                           "answer": "a", "isBalanced": True}}))
    with pytest.raises(DataError, match=r"testdev_balanced_questions\.json.*question 7.*'types'"):
        task.load(bad, "testdev_balanced")
    (bad / "testdev_balanced_questions.json").write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="mapping question ids"):
        task.load(bad, "testdev_balanced")

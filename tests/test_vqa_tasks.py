"""VQA accuracy (leave-one-out, the all-identical rule, variants) and the vqav2 / textvqa plugins.

Expected values are computed by hand from the official definition
    acc = mean over held-out answer i of min(1, #{j != i: a_j == pred} / 3)
so with k of 10 answers matching: k=0 -> 0, 1 -> 9/30, 2 -> (2/3 + 8*2/3)/10 = 0.6, 3 -> (3*2/3 + 7)/10
= 0.9, k >= 4 -> 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from molmo_eval.core.errors import DataError
from molmo_eval.core.registry import get_task
from molmo_eval.core.task import ParseContext
from molmo_eval.core.types import Answer, AnswerKind, Generation
from molmo_eval.metrics import stats
from molmo_eval.metrics.vqa import (
    lmms_eval_accuracy,
    loo_accuracy,
    loo_groups,
    m4c_accuracy,
    official_accuracy,
)


@pytest.mark.parametrize(("k", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_by_match_count(k: int, expected: float) -> None:
    answers = ["cat"] * k + ["dog"] * (10 - k)
    assert loo_accuracy("cat", answers) == pytest.approx(expected, abs=1e-12)
    assert official_accuracy("cat", tuple(answers)) == pytest.approx(expected, abs=1e-12)


def test_fewer_than_ten_answers_average_over_their_own_count() -> None:
    # 3 answers, 2 match: held-out match -> 1 other -> 1/3 (twice); held-out miss -> 2 -> 2/3; mean 4/9
    assert loo_accuracy("a", ["a", "a", "b"]) == pytest.approx(4 / 9)


def test_all_identical_answers_are_not_normalized() -> None:
    # vqaEval.py normalizes only when the cleaned answers are not all identical
    assert official_accuracy("Yes", ("yes",) * 10) == 0.0
    assert official_accuracy("yes", ("yes",) * 10) == 1.0
    assert official_accuracy(" yes\n", ("yes",) * 10) == 1.0  # cleaning still happens
    assert official_accuracy("2", ("Two",) * 10) == 0.0
    # one differing answer switches normalization on for all answers and the prediction
    assert official_accuracy("YES!", ("yes",) * 9 + ("Yes",)) == 1.0
    assert official_accuracy("2", ("Two",) * 9 + ("two",)) == 1.0
    # identical after cleaning counts as identical: " yes" and "yes" clean to the same string
    assert official_accuracy("Yes", ("yes",) * 9 + (" yes",)) == 0.0


def test_normalization_rules_inside_accuracy() -> None:
    answers = ("a dog",) * 3 + ("cat",) * 7
    assert official_accuracy("The Dog.", answers) == pytest.approx(0.9)
    assert official_accuracy("1,000", ("1000",) * 4 + ("many",) * 6) == 1.0
    assert official_accuracy("3.5", ("3.5",) * 2 + ("35",) * 8) == pytest.approx(0.6)


def test_leave_one_out_drops_answers_equal_as_dicts() -> None:
    # without answer_id the dicts of equal answers compare equal, and vqaEval.py drops all of them
    recs = [{"answer": "yes", "answer_confidence": "yes"}] * 3 + [{"answer": "no", "answer_confidence": "yes"}] * 7
    groups = loo_groups(recs)
    assert groups == (0,) * 10
    # held-out "yes" (3x): every "yes" dropped -> 0 matches; held-out "no" (7x): 3 matches -> 1
    assert official_accuracy("yes", tuple(r["answer"] for r in recs), groups) == pytest.approx(0.7)
    distinct = [dict(r, answer_id=i) for i, r in enumerate(recs)]
    assert loo_groups(distinct) is None
    assert official_accuracy("yes", tuple(r["answer"] for r in recs), loo_groups(distinct)) == pytest.approx(0.9)
    # confidence differs -> those dicts differ even without ids
    mixed = [dict(r, answer_confidence=c) for r, c in zip(recs, ["yes", "no", "maybe"] * 3 + ["yes"], strict=True)]
    assert loo_groups(mixed) == (0, 1, 2, 0, 1, 2, 0, 1, 2, 0)


def test_lmms_eval_variant_always_processes_the_prediction() -> None:
    assert lmms_eval_accuracy("Yes", ("yes",) * 10) == 1.0  # official: 0
    assert lmms_eval_accuracy("Two.", ("2",) * 10) == 1.0
    assert lmms_eval_accuracy(" The man's hat\n", ("man's hat",) * 10) == 1.0  # official: 0
    assert lmms_eval_accuracy("The man's hat", ("man 's hat",) * 10) == 0.0  # no "'s" tokenization in 0.7.3


def test_m4c_variant_processes_everything() -> None:
    answers = ("Two",) * 3 + ("dog",) * 7
    assert m4c_accuracy("2", answers) == pytest.approx(0.9)
    assert m4c_accuracy("DOG", answers) == 1.0
    assert m4c_accuracy("cat", answers) == 0.0


# --- the vqav2 plugin -------------------------------------------------------------------------

def _write_vqav2(root: Path, anns: list[dict], questions: list[dict] | None = None) -> Path:
    d = root / "vqav2"
    d.mkdir(parents=True, exist_ok=True)
    qs = questions if questions is not None else [
        {"question_id": a["question_id"], "image_id": a["image_id"], "question": f"q{a['question_id']}?"}
        for a in anns]
    (d / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps({"questions": qs}))
    (d / "v2_mscoco_val2014_annotations.json").write_text(json.dumps({"annotations": anns}))
    return d


def _ann(qid: int, answers: list[str], qtype: str = "what is", atype: str = "other") -> dict:
    return {"question_id": qid, "image_id": 7, "question_type": qtype, "answer_type": atype,
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]}


@pytest.fixture()
def vqav2_dir(tmp_path: Path) -> Path:
    return _write_vqav2(tmp_path, [
        _ann(1, ["yes"] * 10, "is the", "yes/no"),
        _ann(2, ["2"] * 3 + ["3"] * 7, "how many", "number"),
        _ann(3, ["red"] * 10, "what color", "other"),
        _ann(4, ["a cat"] * 2 + ["dog"] * 8, "what is", "other"),
    ])


def test_vqav2_load(vqav2_dir: Path) -> None:
    task = get_task("vqav2")
    samples = task.load(vqav2_dir, "val2014")
    assert [s.id for s in samples] == ["1", "2", "3", "4"]
    s = samples[1]
    assert s.meta == {"answer_type": "number", "question_type": "how many"}
    assert s.prompt_fields == {"question": "q2?"}
    assert s.image is not None and s.image.path == str(vqav2_dir.absolute() / "val2014/COCO_val2014_000000000007.jpg")
    assert len(s.target["answers"]) == 10 and "loo_groups" not in s.target
    assert task.data_files(vqav2_dir, "val2014")[1].name == "v2_mscoco_val2014_annotations.json"


def test_vqav2_score_predictions_end_to_end(vqav2_dir: Path, tmp_path: Path) -> None:
    task = get_task("vqav2")
    samples = task.load(vqav2_dir, "val2014")
    pred_file = tmp_path / "results.json"
    pred_file.write_text(json.dumps([
        {"question_id": 1, "answer": "Yes"},   # identical answers: not normalized -> 0
        {"question_id": 2, "answer": "two"},   # normalized (answers differ) -> "2", 3 matches -> 0.9
        {"question_id": 3, "answer": "red"},   # 1
        {"question_id": 4, "answer": "Cat"},   # "cat" twice -> 0.6
    ]))
    preds = task.read_predictions(pred_file, samples)
    scores = [task.score(s, task.parse(s, preds[s.uid], ParseContext())) for s in samples]
    assert [sc.values["accuracy"] for sc in scores] == pytest.approx([0.0, 0.9, 1.0, 0.6])
    overall, groups = stats.summarize(task.metrics(), stats.columns(samples, scores), task.breakdowns,
                                      seed=0, label="vqav2", n_boot=200)
    assert overall["accuracy"].value == pytest.approx(2.5 / 4)
    assert overall["accuracy"].n == 4
    assert overall["accuracy"].ci_low is not None and overall["accuracy"].ci_low <= 0.625 <= overall["accuracy"].ci_high
    assert groups["answer_type"]["other"]["accuracy"].value == pytest.approx(0.8)
    assert groups["answer_type"]["yes/no"]["accuracy"].value == 0.0
    assert groups["question_type"]["how many"]["accuracy"].value == pytest.approx(0.9)
    lmms = task.with_variant("lmms-eval")
    assert lmms.score(samples[0], Answer(AnswerKind.TEXT, "Yes")).values["accuracy"] == 1.0


def test_vqav2_failed_answer_scores_zero(vqav2_dir: Path) -> None:
    task = get_task("vqav2")
    s = task.load(vqav2_dir, "val2014")[2]
    assert task.failed_score(s).values["accuracy"] == 0.0
    empty = task.parse(s, Generation(text=""), ParseContext())
    assert not empty.parse_ok and task.score(s, empty).values["accuracy"] == 0.0


def test_vqav2_prompts(vqav2_dir: Path) -> None:
    task = get_task("vqav2")
    s = task.load(vqav2_dir, "val2014")[0]
    assert task.prompt(s) == "q1?\nAnswer the question using a single word or phrase."
    assert task.prompt(s, "molmo") == "vqa2: q1?"


def test_vqav2_prediction_file_errors(vqav2_dir: Path, tmp_path: Path) -> None:
    task = get_task("vqav2")
    samples = task.load(vqav2_dir, "val2014")
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps([{"question_id": 99, "answer": "x"}]))
    with pytest.raises(DataError, match="99"):
        task.read_predictions(bad, samples)
    bad.write_text(json.dumps([{"question_id": 1, "answer": "x"}, {"question_id": 1, "answer": "y"}]))
    with pytest.raises(DataError, match="second prediction"):
        task.read_predictions(bad, samples)
    bad.write_text(json.dumps([{"question_id": 1, "text": "x"}]))
    with pytest.raises(DataError, match="'answer'"):
        task.read_predictions(bad, samples)
    bad.write_text(json.dumps({"question_id": 1}))
    with pytest.raises(DataError, match="JSON list"):
        task.read_predictions(bad, samples)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps([{"question_id": 2, "answer": "3"}]))
    assert set(task.read_predictions(partial, samples)) == {samples[1].uid}


def test_vqav2_data_errors_name_file_record_and_field(tmp_path: Path) -> None:
    task = get_task("vqav2")
    with pytest.raises(DataError, match="v2_OpenEnded_mscoco_val2014_questions.json"):
        task.load(tmp_path / "nothing", "val2014")
    bad = _ann(5, ["x"] * 10)
    del bad["answers"][3]["answer"]
    d = _write_vqav2(tmp_path / "a", [bad])
    with pytest.raises(DataError, match=r"annotations\.json.*index 0, answers\[3\].*'answer'"):
        task.load(d, "val2014")
    bad = _ann(5, ["x"] * 10)
    del bad["answer_type"]
    d = _write_vqav2(tmp_path / "b", [bad])
    with pytest.raises(DataError, match="'answer_type'"):
        task.load(d, "val2014")
    d = _write_vqav2(tmp_path / "c", [_ann(5, ["x"] * 10)],
                     questions=[{"question_id": 6, "image_id": 1, "question": "?"}])
    with pytest.raises(DataError, match="question_id 6.*annotation"):
        task.load(d, "val2014")
    d = _write_vqav2(tmp_path / "d", [_ann(5, ["x"] * 10)],
                     questions=[{"question_id": 5, "image_id": "1", "question": "?"}])
    with pytest.raises(DataError, match="'image_id'.*integer"):
        task.load(d, "val2014")
    d = _write_vqav2(tmp_path / "e", [_ann(5, [])])
    with pytest.raises(DataError, match="at least one answer"):
        task.load(d, "val2014")


def test_vqav2_score_after_json_round_trip(vqav2_dir: Path) -> None:
    """Re-scoring reads targets back from samples.jsonl, where tuples became lists."""
    task = get_task("vqav2")
    s = task.load(vqav2_dir, "val2014")[1]
    from dataclasses import replace
    s2 = replace(s, target=json.loads(json.dumps(dict(s.target))))
    ans = Answer(AnswerKind.TEXT, "three")
    assert task.score(s2, ans).values == task.score(s, ans).values


# --- the textvqa plugin -----------------------------------------------------------------------

def _write_textvqa(root: Path, records: list[dict]) -> Path:
    d = root / "textvqa"
    d.mkdir(parents=True, exist_ok=True)
    (d / "TextVQA_0.5.1_val.json").write_text(json.dumps({"dataset_name": "textvqa", "data": records}))
    return d


def _tv(qid: int, answers: list[str], image_id: str = "abc") -> dict:
    return {"question": "what does it say?", "question_id": qid, "image_id": image_id, "answers": answers,
            "image_width": 640, "image_height": 480, "set_name": "val", "image_classes": []}


def test_textvqa_load_and_variants(tmp_path: Path) -> None:
    d = _write_textvqa(tmp_path, [_tv(10, ["Coca Cola"] * 3 + ["coca-cola"] * 7), _tv(11, ["stop"] * 10)])
    task = get_task("textvqa")
    samples = task.load(d, "val")
    assert [s.id for s in samples] == ["10", "11"]
    assert samples[0].image_size == (640, 480)
    assert samples[0].image is not None and samples[0].image.path == str(d.absolute() / "train_images/abc.jpg")
    # official: answers differ -> normalized: "coca cola" x10 -> 1; m4c the same
    assert task.score(samples[0], Answer(AnswerKind.TEXT, "Coca-Cola")).values["accuracy"] == 1.0
    # official: ten identical "stop" -> not normalized -> "STOP" scores 0; m4c lower-cases -> 1
    assert task.score(samples[1], Answer(AnswerKind.TEXT, "STOP")).values["accuracy"] == 0.0
    m4c = task.with_variant("m4c")
    assert m4c.score(samples[1], Answer(AnswerKind.TEXT, "STOP")).values["accuracy"] == 1.0
    assert task.breakdowns == () and task.prompt(samples[1], "molmo") == "text_vqa: what does it say?"


def test_textvqa_rejects_paths_outside_the_data_root(tmp_path: Path) -> None:
    d = _write_textvqa(tmp_path, [_tv(1, ["a"] * 10, image_id="../../../etc/passwd")])
    with pytest.raises(DataError, match="escapes the data root"):
        get_task("textvqa").load(d, "val")


def test_textvqa_answers_must_be_strings(tmp_path: Path) -> None:
    d = _write_textvqa(tmp_path, [_tv(1, ["a", 3])])
    with pytest.raises(DataError, match=r"TextVQA_0\.5\.1_val\.json.*index 0.*'answers'"):
        get_task("textvqa").load(d, "val")


def test_duplicate_question_ids_are_refused(tmp_path: Path) -> None:
    d = _write_textvqa(tmp_path, [_tv(1, ["a"] * 10), _tv(1, ["b"] * 10)])
    with pytest.raises(DataError, match="duplicate"):
        get_task("textvqa").load(d, "val")

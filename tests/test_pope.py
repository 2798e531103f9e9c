"""The pope plugin: evaluate.py metrics per split from hand-counted confusion tables, the mean over
splits, yes_ratio of predictions, prediction files and loader errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from molmo_eval.core.errors import DataError
from molmo_eval.core.registry import get_task
from molmo_eval.core.task import ParseContext
from molmo_eval.core.types import Answer, AnswerKind, Generation
from molmo_eval.metrics import stats

# per split: (labels, answers)
RANDOM = (["yes", "yes", "yes", "no", "no"], ["Yes", "Yes, there is.", "No.", "yes", "There is no cat."])
# random: TP=2 (1, 2), FN=1 (3), FP=1 (4), TN=1 (5): acc 3/5, P 2/3, R 2/3, F1 2/3, yes_ratio 3/5
POPULAR = (["yes", "no", "no", "no"], ["No", "no", "NO", "Not sure"])
# popular: "NO" and "Not sure" read as yes -> FN=1, TN=1, FP=2, TP=0: acc 1/4, P 0, R 0, F1 undefined (0/0),
# yes_ratio 2/4


def _write(root: Path, split: str, labels: list[str], answers: list[str], key: str = "answer") -> Path:
    d = root / "pope"
    d.mkdir(exist_ok=True)
    with open(d / f"coco_pope_{split}.json", "w") as f:
        for i, label in enumerate(labels):
            f.write(json.dumps({"question_id": i + 1, "image": f"COCO_val2014_{i:012d}.jpg",
                                "text": "Is there a cat in the image?", "label": label}) + "\n")
    with open(d / f"answers_{split}.jsonl", "w") as f:
        for i, a in enumerate(answers):
            f.write(json.dumps({"question_id": i + 1, key: a}) + "\n")
    return d


def _score(d: Path, splits: list[str]):
    task = get_task("pope")
    samples, scores = [], []
    for split in splits:
        ss = task.load(d, split)
        preds = task.read_predictions(d / f"answers_{split}.jsonl", ss)
        samples += ss
        scores += [task.score(s, task.parse(s, preds[s.uid], ParseContext())) for s in ss]
    return stats.summarize(task.metrics(), stats.columns(samples, scores), task.breakdowns, seed=0,
                           label="pope", n_boot=100, split_only=task.split_metrics())


def test_one_split(tmp_path: Path) -> None:
    d = _write(tmp_path, "random", *RANDOM)
    overall, groups = _score(d, ["random"])
    m = {k: v.value for k, v in overall.items()}
    assert m == pytest.approx({"accuracy": 3 / 5, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3,
                               "yes_ratio": 3 / 5})
    assert overall["f1"].n == 5 and "split" not in groups


def test_mean_over_splits_and_per_split_breakdown(tmp_path: Path) -> None:
    _write(tmp_path, "random", *RANDOM)
    d = _write(tmp_path, "popular", *POPULAR)
    overall, groups = _score(d, ["random", "popular"])
    assert groups["split"]["random"]["accuracy"].value == pytest.approx(3 / 5)
    assert groups["split"]["popular"]["accuracy"].value == pytest.approx(1 / 4)
    assert groups["split"]["popular"]["yes_ratio"].value == pytest.approx(2 / 4)
    assert overall["accuracy"].value == pytest.approx((3 / 5 + 1 / 4) / 2)  # mean of splits, not pooled 4/9
    assert overall["yes_ratio"].value == pytest.approx((3 / 5 + 2 / 4) / 2)
    assert overall["precision"].value == pytest.approx((2 / 3 + 0) / 2)
    # popular's F1 is 0/0 (evaluate.py would divide by zero): the mean covers the splits where it exists
    assert overall["f1"].value == pytest.approx(2 / 3)


def test_yes_ratio_counts_predictions_not_labels(tmp_path: Path) -> None:
    d = _write(tmp_path, "adversarial", ["yes"] * 4, ["no"] * 4)
    overall, _ = _score(d, ["adversarial"])
    assert overall["yes_ratio"].value == 0.0
    assert overall["accuracy"].value == 0.0


def test_failed_generation_is_the_wrong_answer(tmp_path: Path) -> None:
    d = _write(tmp_path, "random", ["yes", "no"], ["", ""])
    task = get_task("pope")
    s_yes, s_no = task.load(d, "random")
    assert task.failed_score(s_yes).values == {"correct": 0.0, "tp": 0.0, "pred_yes": 0.0, "label_yes": 1.0,
                                               "split_index": 0.0}  # a false negative
    assert task.failed_score(s_no).values["pred_yes"] == 1.0  # a false positive
    empty = task.parse(s_no, Generation(text=""), ParseContext())
    assert empty == Answer(AnswerKind.YESNO, True, parse_ok=False)  # evaluate.py reads "" as yes


def test_prediction_files(tmp_path: Path) -> None:
    d = _write(tmp_path, "random", *RANDOM, key="text")  # LLaVA's {"question_id", "text"}
    task = get_task("pope")
    samples = task.load(d, "random")
    preds = task.read_predictions(d / "answers_random.jsonl", samples)
    assert preds[samples[3].uid].text == "yes"
    shuffled = tmp_path / "shuffled.jsonl"  # every line has a distinct known id: matched by id
    shuffled.write_text("\n".join(json.dumps({"question_id": i, "answer": a})
                                  for i, a in [(2, "b"), (1, "a"), (3, "c"), (5, "e"), (4, "d")]))
    assert task.read_predictions(shuffled, samples)[samples[0].uid].text == "a"
    no_ids = tmp_path / "no_ids.jsonl"  # no ids: question-file order, as evaluate.py pairs them
    no_ids.write_text("\n".join(json.dumps({"answer": a}) for a in ["a", "b"]))
    got = task.read_predictions(no_ids, samples)
    assert [got[s.uid].text for s in samples[:2]] == ["a", "b"] and len(got) == 2
    too_many = tmp_path / "too_many.jsonl"
    too_many.write_text("\n".join(json.dumps({"answer": "a"}) for _ in range(6)))
    with pytest.raises(DataError, match="6 answers for 5 questions"):
        task.read_predictions(too_many, samples)
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"question_id": 1, "answer": "a"}) + "\n" + json.dumps({"answer": "b"}) + "\n"
                     + json.dumps({"question_id": 9, "answer": "c"}))
    with pytest.raises(DataError, match="question_id 9 where the question file has 3"):
        task.read_predictions(wrong, samples)
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"question_id": 1, "prediction": "a"}))
    with pytest.raises(DataError, match="'answer' or 'text'"):
        task.read_predictions(missing, samples)


def test_loader(tmp_path: Path) -> None:
    d = _write(tmp_path, "popular", *POPULAR)
    task = get_task("pope")
    s = task.load(d, "popular")[1]
    assert s.id == "2" and s.target == {"label": "no"} and s.split == "popular"
    assert s.image is not None and s.image.path == str(d.absolute() / "val2014/COCO_val2014_000000000001.jpg")
    assert task.prompt(s) == "Is there a cat in the image?\nAnswer the question using a single word or phrase."
    assert task.default_splits == ("random", "popular", "adversarial")
    bad = tmp_path / "bad" / "pope"
    bad.mkdir(parents=True)
    (bad / "coco_pope_random.json").write_text(json.dumps({"question_id": 1, "image": "x.jpg", "text": "?",
                                                           "label": "Yes"}) + "\n")
    with pytest.raises(DataError, match=r"coco_pope_random\.json.*line 1.*'label'"):
        task.load(bad, "random")
    (bad / "coco_pope_random.json").write_text(json.dumps({"question_id": 1, "image": "../../x.jpg", "text": "?",
                                                           "label": "yes"}) + "\n")
    with pytest.raises(DataError, match="escapes the data root"):
        task.load(bad, "random")
    (bad / "coco_pope_random.json").write_text(json.dumps({"question_id": 1, "text": "?", "label": "yes"}) + "\n")
    with pytest.raises(DataError, match="'image'"):
        task.load(bad, "random")

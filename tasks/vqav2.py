"""VQAv2 task plugin: official question/annotation files -> samples -> VQA accuracy.

Files under ``<data-root>/vqav2/`` (the official names)::

    v2_OpenEnded_mscoco_<split>_questions.json   {"questions": [{question_id, image_id, question}]}
    v2_mscoco_<split>_annotations.json           {"annotations": [{question_id, image_id, question_type,
                                                   answer_type, answers: [{answer, answer_confidence,
                                                   answer_id}], multiple_choice_answer}]}
    <split>/COCO_<split>_<image_id:012d>.jpg

Samples follow the questions file; every question needs an annotation (as vqaEval.py needs one per
result). Scoring: `molmo_eval.metrics.vqa` (official vqaEval.py by default; ``lmms-eval`` variant).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from molmo_eval.core.errors import DataError
from molmo_eval.core.metric import Metric
from molmo_eval.core.task import ParseContext, Task
from molmo_eval.core.types import (
    Answer,
    AnswerKind,
    CoordSpace,
    Generation,
    GenerationSettings,
    ImageRef,
    Sample,
    SampleScore,
)
from molmo_eval.data.files import confined, field, read_json
from molmo_eval.metrics.vqa import SCORERS, loo_groups, vqa_metrics

from ._vqa_common import (
    NO_FIELDS,
    as_id,
    check_unique_ids,
    gc_paused,
    read_json_answers,
    short_answer_prompt,
    text_answer,
    value,
)

_ID = (int, str)


def question_file(data_dir: Path, split: str) -> Path:
    return data_dir / f"v2_OpenEnded_mscoco_{split}_questions.json"


def annotation_file(data_dir: Path, split: str) -> Path:
    return data_dir / f"v2_mscoco_{split}_annotations.json"


@dataclass(frozen=True)
class VQAv2(Task):
    name: ClassVar[str] = "vqav2"
    description: ClassVar[str] = "VQAv2 open-ended questions on COCO, VQA soft accuracy (vqaEval.py)"
    splits: ClassVar[tuple[str, ...]] = ("val2014", "train2014")
    default_splits: ClassVar[tuple[str, ...]] = ("val2014",)
    answer_kind: ClassVar[AnswerKind] = AnswerKind.TEXT
    primary_metric: ClassVar[str] = "accuracy"
    data_dir: ClassVar[str] = "vqav2"
    variants: ClassVar[tuple[str, ...]] = ("official", "lmms-eval")
    breakdowns: ClassVar[tuple[str, ...]] = ("answer_type", "question_type")
    version: ClassVar[str] = "2"  # 2: the lmms-eval variant follows lmms-eval 0.7.3 end to end
    molmo_style: ClassVar[str] = "vqa2"

    # --- data -------------------------------------------------------------------------------
    def data_files(self, data_dir: Path, split: str) -> list[Path]:
        return [question_file(data_dir, split), annotation_file(data_dir, split)]

    def load(self, data_dir: Path, split: str) -> list[Sample]:
        with gc_paused():
            return self._load(data_dir, split)

    def _load(self, data_dir: Path, split: str) -> list[Sample]:
        self.check_split(split)
        qpath, apath = question_file(data_dir, split), annotation_file(data_dir, split)
        questions = field(read_json(qpath, "VQAv2 questions file"), "questions", path=qpath, index="(top level)",
                          types=list, expected="a top-level 'questions' list")
        annotations = field(read_json(apath, "VQAv2 annotations file"), "annotations", path=apath,
                            index="(top level)", types=list, expected="a top-level 'annotations' list")
        by_id: dict[str, tuple[int, object]] = {}
        for i, ann in enumerate(annotations):
            qid = as_id(value(ann, "question_id", _ID, path=apath, index=i), path=apath, record=f"at index {i}",
                        name="question_id")
            if qid in by_id:  # vqaEval.py would silently score against the last one
                raise DataError(f"second annotation for question {qid} (first at index {by_id[qid][0]})",
                                path=apath, record=f"at index {i}", field="question_id",
                                expected="one annotation per question")
            by_id[qid] = (i, ann)
        # image names come from an integer id, so confining the folder confines every file in it
        folder = str(confined(data_dir, split, path=qpath))
        samples = []
        for i, q in enumerate(questions):
            qid = as_id(value(q, "question_id", _ID, path=qpath, index=i), path=qpath, record=f"at index {i}",
                        name="question_id")
            image_id = value(q, "image_id", (int,), path=qpath, index=i, expected="an integer image id")
            question = value(q, "question", (str,), path=qpath, index=i)
            found = by_id.get(qid)
            if found is None:
                raise DataError("question has no annotation", path=apath, record=f"question_id {qid}",
                                expected=f"an annotation for every question of {qpath.name}")
            target, meta = _annotation(found[1], apath, found[0])
            samples.append(Sample(
                id=qid, task=self.name, split=split,
                image=ImageRef(path=f"{folder}/COCO_{split}_{image_id:012d}.jpg"),
                prompt_fields={"question": question}, target=target, meta=meta))
        return check_unique_ids(samples, qpath, "question_id")

    # --- per sample -------------------------------------------------------------------------
    def prompt(self, sample: Sample, style: str = "default", space: CoordSpace | None = None) -> str:
        return short_answer_prompt(sample.prompt_fields["question"], style, self.molmo_style)

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=32)

    def parse(self, sample: Sample, generation: Generation, ctx: ParseContext) -> Answer:
        return text_answer(generation)

    def score(self, sample: Sample, answer: Answer) -> SampleScore:
        return SampleScore(sample.uid, {"accuracy": vqa_score(self.variant, sample, answer)}, NO_FIELDS)

    # --- aggregate --------------------------------------------------------------------------
    def metrics(self) -> tuple[Metric, ...]:
        return vqa_metrics()

    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> dict[str, Generation]:
        """The VQA results format: a JSON list of ``{"question_id": int, "answer": str}``."""
        return read_json_answers(path, samples, id_key="question_id", answer_key="answer", unknown_ids="error")


def vqa_score(variant: str, sample: Sample, answer: Answer) -> float:
    """VQA accuracy of one answer under a variant; an unparseable-without-text answer scores 0."""
    pred = answer.value
    if not isinstance(pred, str):
        return 0.0
    target = sample.target
    groups = target.get("loo_groups")
    return SCORERS[variant](pred, tuple(target["answers"]), None if groups is None else tuple(groups))


def _annotation(ann: object, path: Path, index: int) -> tuple[dict[str, object], dict[str, str]]:
    answers = value(ann, "answers", (list,), path=path, index=index, expected="a non-empty list of answers")
    if not answers:
        raise DataError("empty list", path=path, record=f"at index {index}", field="answers",
                        expected="at least one answer")
    texts = []
    for k, a in enumerate(answers):
        text = a.get("answer") if type(a) is dict else None
        if type(text) is not str:
            text = field(a, "answer", path=path, index=f"at index {index}, answers[{k}]", types=str)
        texts.append(text)
    meta = {"answer_type": value(ann, "answer_type", (str,), path=path, index=index),
            "question_type": value(ann, "question_type", (str,), path=path, index=index)}
    groups = loo_groups(answers)
    target: dict[str, object] = {"answers": tuple(texts)}
    if groups is not None:
        target["loo_groups"] = groups
    return target, meta

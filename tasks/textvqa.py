"""TextVQA task plugin: the official TextVQA JSON -> samples -> VQA accuracy over the 10 answers.

Files under ``<data-root>/textvqa/``::

    TextVQA_0.5.1_<split>.json    {"data": [{question, question_id, image_id, answers (10 strings),
                                             image_width, image_height, set_name, ...}]}
    train_images/<image_id>.jpg   (train and val images; test_images/ for test)

Scoring: the VQA accuracy of `molmo_eval.metrics.vqa` — ``official`` applies vqaEval.py's rules
(answers are told apart by position), ``m4c`` is LLaVA's / MMF's TextVQA evaluator (EvalAI processor
on every answer and on the prediction).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from molmo_eval.core.errors import DataError
from molmo_eval.core.types import AnswerKind, Sample
from molmo_eval.data.files import field, read_json
from molmo_eval.data.validate import image_size

from ._vqa_common import (
    ImagePaths,
    as_id,
    check_unique_ids,
)
from .vqav2 import VQAv2


def annotation_file(data_dir: Path, split: str) -> Path:
    return data_dir / f"TextVQA_0.5.1_{split}.json"


@dataclass(frozen=True)
class TextVQA(VQAv2):
    """Scored like VQAv2 (the same 10-answer soft accuracy); only the files differ."""

    name: ClassVar[str] = "textvqa"
    description: ClassVar[str] = "TextVQA: questions that need reading text in images, VQA soft accuracy"
    splits: ClassVar[tuple[str, ...]] = ("val", "train")
    default_splits: ClassVar[tuple[str, ...]] = ("val",)
    answer_kind: ClassVar[AnswerKind] = AnswerKind.TEXT
    primary_metric: ClassVar[str] = "accuracy"
    data_dir: ClassVar[str] = "textvqa"
    variants: ClassVar[tuple[str, ...]] = ("official", "m4c")
    breakdowns: ClassVar[tuple[str, ...]] = ()  # TextVQA files carry no answer or question types
    version: ClassVar[str] = "1"
    molmo_style: ClassVar[str] = "text_vqa"

    def data_files(self, data_dir: Path, split: str) -> list[Path]:
        return [annotation_file(data_dir, split)]

    def load(self, data_dir: Path, split: str) -> list[Sample]:
        self.check_split(split)
        path = annotation_file(data_dir, split)
        records = field(read_json(path, "TextVQA annotation file"), "data", path=path, index="(top level)",
                        types=list, expected="a top-level 'data' list")
        images = ImagePaths(data_dir, path)
        folder = "test_images" if split == "test" else "train_images"
        samples = []
        for i, rec in enumerate(records):
            at = f"at index {i}"
            qid = as_id(field(rec, "question_id", path=path, index=at), path=path, record=at, name="question_id")
            image_id = field(rec, "image_id", path=path, index=at, types=str)
            answers = field(rec, "answers", path=path, index=at, types=list, expected="a list of 10 answers")
            if not answers or not all(isinstance(a, str) for a in answers):
                raise DataError("not a non-empty list of strings", path=path, record=at, field="answers",
                                expected="the human answers as strings")
            samples.append(Sample(
                id=qid, task=self.name, split=split,
                image=images.ref(f"{folder}/{image_id}.jpg", at),
                prompt_fields={"question": field(rec, "question", path=path, index=at, types=str)},
                target={"answers": tuple(answers)}, meta={},
                image_size=_size(rec, path, at)))
        return check_unique_ids(samples, path, "question_id")


def _size(rec: dict, path: Path, at: str) -> tuple[int, int] | None:
    if "image_width" not in rec and "image_height" not in rec:
        return None
    return image_size(rec, path=path, index=at, width="image_width", height="image_height")

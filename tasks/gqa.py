"""GQA task plugin: the official balanced question file -> samples -> GQA eval.py metrics.

Files under ``<data-root>/gqa/``::

    <split>_questions.json   {qid: {imageId, question, answer, fullAnswer, isBalanced, entailed,
                                    equivalent, types: {structural, semantic, detailed}, groups: {global,
                                    local}, semantic, semanticStr}}
    images/<imageId>.jpg

Every question of the file becomes a sample (eval.py needs predictions for all of them: unbalanced
ones feed only consistency); per-question numbers count for balanced questions only. Scoring and the
cross-question metrics (consistency, distribution) are in `molmo_eval.metrics.gqa`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from molmo_eval.core.errors import DataError
from molmo_eval.core.metric import Metric
from molmo_eval.core.task import ParseContext, Task
from molmo_eval.core.types import (
    Answer,
    AnswerKind,
    CoordSpace,
    Generation,
    GenerationSettings,
    Sample,
    SampleScore,
)
from molmo_eval.data.files import field, read_json
from molmo_eval.metrics.gqa import (
    answer_type,
    consistency_column,
    distribution_columns,
    gold_key,
    gqa_metrics,
    prediction_key,
)

from ._vqa_common import ImagePaths, read_json_answers, short_answer_prompt, text_answer

NAN = float("nan")


def question_file(data_dir: Path, split: str) -> Path:
    return data_dir / f"{split}_questions.json"


@dataclass(frozen=True)
class GQA(Task):
    name: ClassVar[str] = "gqa"
    description: ClassVar[str] = "GQA compositional questions on scene images, eval.py metrics (balanced)"
    splits: ClassVar[tuple[str, ...]] = ("testdev_balanced", "val_balanced", "testdev_all", "val_all")
    default_splits: ClassVar[tuple[str, ...]] = ("testdev_balanced",)
    answer_kind: ClassVar[AnswerKind] = AnswerKind.TEXT
    primary_metric: ClassVar[str] = "accuracy"
    data_dir: ClassVar[str] = "gqa"
    variants: ClassVar[tuple[str, ...]] = ("official", "llava", "lmms-eval")
    breakdowns: ClassVar[tuple[str, ...]] = ("structural", "semantic")
    version: ClassVar[str] = "2"  # 2: the lmms-eval variant follows lmms-eval 0.7.3 end to end
    molmo_style: ClassVar[str] = "gqa"

    def data_files(self, data_dir: Path, split: str) -> list[Path]:
        return [question_file(data_dir, split)]

    def load(self, data_dir: Path, split: str) -> list[Sample]:
        self.check_split(split)
        path = question_file(data_dir, split)
        data = read_json(path, "GQA questions file", unique_keys=True)  # keyed by question id
        if not isinstance(data, Mapping):
            raise DataError(f"top level is a {type(data).__name__}", path=path,
                            expected="an object mapping question ids to questions")
        images = ImagePaths(data_dir, path)
        return [self._sample(str(qid), rec, split, path, images) for qid, rec in data.items()]

    def _sample(self, qid: str, rec: Any, split: str, path: Path, images: ImagePaths) -> Sample:
        at = f"question {qid}"
        types = field(rec, "types", path=path, index=at, types=dict, expected="an object with 'structural' "
                      "and 'semantic'")
        structural = field(types, "structural", path=path, index=at, types=str)
        semantic = field(types, "semantic", path=path, index=at, types=str)
        groups = rec.get("groups") or {}
        group = groups.get("global") if isinstance(groups, Mapping) else None
        entailed = rec.get("entailed") or []
        if not isinstance(entailed, list):
            raise DataError(f"has type {type(entailed).__name__}", path=path, record=at, field="entailed",
                            expected="a list of question ids")
        image_id = field(rec, "imageId", path=path, index=at, types=str)
        return Sample(
            id=qid, task=self.name, split=split,
            image=images.ref(f"images/{image_id}.jpg", at),
            prompt_fields={"question": field(rec, "question", path=path, index=at, types=str)},
            target={"answer": field(rec, "answer", path=path, index=at, types=str),
                    "balanced": bool(field(rec, "isBalanced", path=path, index=at, types=bool)),
                    "entailed": [str(e) for e in entailed],
                    "group": None if group is None else str(group)},
            meta={"structural": structural, "semantic": semantic})

    def prompt(self, sample: Sample, style: str = "default", space: CoordSpace | None = None) -> str:
        return short_answer_prompt(sample.prompt_fields["question"], style, self.molmo_style)

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=32)

    def parse(self, sample: Sample, generation: Generation, ctx: ParseContext) -> Answer:
        return text_answer(generation)

    def score(self, sample: Sample, answer: Answer) -> SampleScore:
        """Per-question accuracy (NaN for unbalanced questions) in ``accuracy`` and in ``binary`` or
        ``open``; the compared prediction string is kept in ``fields`` for the cross-question metrics."""
        pred = prediction_key(self.variant, answer.value) if isinstance(answer.value, str) else None
        correct = pred is not None and pred == gold_key(self.variant, sample.target["answer"])
        fields = {} if pred is None else {"prediction": pred}
        if not sample.target["balanced"]:
            return SampleScore(sample.uid, {"accuracy": NAN, "binary": NAN, "open": NAN}, fields)
        acc = 1.0 if correct else 0.0
        kind = answer_type(str(sample.meta["structural"]))
        return SampleScore(sample.uid, {"accuracy": acc, "binary": acc if kind == "binary" else NAN,
                                        "open": acc if kind == "open" else NAN}, fields)

    def finalize(self, samples: Sequence[Sample], scores: Sequence[SampleScore]) -> list[SampleScore]:
        """Adds ``consistency`` and the distribution code columns (per split)."""
        out = list(scores)
        for split in dict.fromkeys(s.split for s in samples):
            idx = [i for i, s in enumerate(samples) if s.split == split]
            for i, extra in zip(idx, self._cross_columns([samples[i] for i in idx], [scores[i] for i in idx]),
                                strict=True):
                out[i] = replace(scores[i], values={**scores[i].values, **extra})
        return out

    def _cross_columns(self, samples: Sequence[Sample], scores: Sequence[SampleScore]) -> list[dict[str, float]]:
        preds = [sc.fields.get("prediction") for sc in scores]
        golds = [gold_key(self.variant, s.target["answer"]) for s in samples]
        balanced = [bool(s.target["balanced"]) for s in samples]
        correct = [p is not None and p == g for p, g in zip(preds, golds, strict=True)]
        cons = consistency_column([s.id for s in samples], balanced, correct,
                                  [s.target.get("entailed") or () for s in samples])
        dist = distribution_columns([s.target.get("group") for s in samples], golds, preds, balanced)
        return [{"consistency": float(cons[i]), **{k: float(v[i]) for k, v in dist.items()}}
                for i in range(len(samples))]

    def metrics(self) -> tuple[Metric, ...]:
        return gqa_metrics()

    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> dict[str, Generation]:
        """GQA's predictions format: a JSON list of ``{"questionId": str, "prediction": str}``."""
        return read_json_answers(path, samples, id_key="questionId", answer_key="prediction",
                                 unknown_ids="ignore")


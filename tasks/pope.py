"""POPE task plugin: the official question files -> samples -> evaluate.py yes/no metrics.

Files under ``<data-root>/pope/``::

    coco_pope_<split>.json               JSON lines {"question_id", "image", "text", "label": "yes"|"no"}
    val2014/COCO_val2014_<id:012d>.jpg   (the ``image`` field, under val2014/)

Splits random, popular and adversarial; scored together, every metric is the mean over the splits of
the per-split value and the per-split values form the ``split`` breakdown (`molmo_eval.metrics.pope`).
Answers are read with POPE's own rule (`molmo_eval.parsing.yesno`). A failed generation counts as the
wrong answer (the opposite of the label) in every metric.
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
    Sample,
    SampleScore,
)
from molmo_eval.data.files import field, iter_jsonl
from molmo_eval.metrics.pope import pope_metrics, sample_values
from molmo_eval.parsing.yesno import pope_says_yes

from ._vqa_common import ImagePaths, Shared, as_id, check_unique_ids, read_jsonl_answers, short_answer_prompt


def question_file(data_dir: Path, split: str) -> Path:
    return data_dir / f"coco_pope_{split}.json"


@dataclass(frozen=True)
class POPE(Task):
    name: ClassVar[str] = "pope"
    description: ClassVar[str] = "POPE object-hallucination yes/no probes on COCO (evaluate.py rule)"
    splits: ClassVar[tuple[str, ...]] = ("random", "popular", "adversarial")
    default_splits: ClassVar[tuple[str, ...]] = ("random", "popular", "adversarial")
    answer_kind: ClassVar[AnswerKind] = AnswerKind.YESNO
    primary_metric: ClassVar[str] = "f1"
    data_dir: ClassVar[str] = "pope"
    breakdowns: ClassVar[tuple[str, ...]] = ()  # the split breakdown is added whenever several splits run
    version: ClassVar[str] = "1"

    def data_files(self, data_dir: Path, split: str) -> list[Path]:
        return [question_file(data_dir, split)]

    def load(self, data_dir: Path, split: str) -> list[Sample]:
        self.check_split(split)
        path = question_file(data_dir, split)
        images = ImagePaths(data_dir, path)
        shared = Shared()  # the same question is asked of many images; two labels
        no_meta = shared.mapping()
        samples = []
        for lineno, rec in iter_jsonl(path, "POPE question file"):
            at = f"at line {lineno}"
            label = field(rec, "label", path=path, index=at, types=str)
            if label not in ("yes", "no"):
                raise DataError(f"label {label!r}", path=path, record=at, field="label", expected='"yes" or "no"')
            image = field(rec, "image", path=path, index=at, types=str)
            samples.append(Sample(
                id=as_id(field(rec, "question_id", path=path, index=at), path=path, record=at, name="question_id"),
                task=self.name, split=split, image=images.ref(f"val2014/{image}", at),
                prompt_fields=shared.mapping(("question", field(rec, "text", path=path, index=at, types=str))),
                target=shared.mapping(("label", label)), meta=no_meta))
        return check_unique_ids(samples, path, "question_id")

    def prompt(self, sample: Sample, style: str = "default", space: CoordSpace | None = None) -> str:
        return short_answer_prompt(sample.prompt_fields["question"], style, "vqa2")

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=32)

    def parse(self, sample: Sample, generation: Generation, ctx: ParseContext) -> Answer:
        """evaluate.py maps every text to yes or no; empty text is flagged but still read (as yes)."""
        text = generation.text
        return Answer(AnswerKind.YESNO, pope_says_yes(text), parse_ok=bool(text.strip()))

    def score(self, sample: Sample, answer: Answer) -> SampleScore:
        label_yes = sample.target["label"] == "yes"
        pred_yes = answer.value if isinstance(answer.value, bool) else not label_yes
        return SampleScore(sample.uid, sample_values(label_yes, pred_yes, self.splits.index(sample.split)))

    def metrics(self) -> tuple[Metric, ...]:
        return pope_metrics()

    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> dict[str, Generation]:
        """POPE answer files: JSON lines ``{"question_id", "answer"}`` (POPE) or ``{"question_id", "text"}``
        (LLaVA), one per question. Matched by question id when every line has a distinct one that names
        a question; otherwise by position, as evaluate.py pairs answers with the question file."""
        lines = read_jsonl_answers(path, id_key="question_id", answer_keys=("answer", "text"))
        ids = [rid for _, rid, _ in lines]
        sample_ids = [s.id for s in samples]
        by_id = dict(zip(sample_ids, samples, strict=True))
        if (None not in ids and len(set(ids)) == len(ids) and len(by_id) == len(samples)
                and all(i in by_id for i in ids)):
            return {by_id[rid].uid: Generation(text=text) for _, rid, text in lines}  # type: ignore[index]
        if len(lines) > len(samples):
            raise DataError(f"{len(lines)} answers for {len(samples)} questions", path=path,
                            expected="one answer line per question, in question-file order")
        out = {}
        for (lineno, rid, text), sample in zip(lines, samples, strict=False):  # fewer answers: the rest are missing
            if rid is not None and rid != sample.id:
                raise DataError(f"question_id {rid} where the question file has {sample.id}", path=path,
                                record=f"at line {lineno}", field="question_id",
                                expected="answers in question-file order")
            out[sample.uid] = Generation(text=text)
        return out

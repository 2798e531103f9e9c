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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import chain, repeat
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, ClassVar

from molmo_eval.core.errors import DataError
from molmo_eval.core.heap import gc_paused, keep_until_exit
from molmo_eval.core.metric import Metric
from molmo_eval.core.task import ParseContext, ScoredColumns, Task
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
from molmo_eval.data.files import confined, field, read_json, read_json_typed
from molmo_eval.metrics.vqa import SCORERS, batch_accuracy, coded_accuracy, loo_groups, vqa_metrics

from ._vqa_common import (
    NO_FIELDS,
    Shared,
    as_id,
    check_unique_ids,
    prediction_schema,
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
        shared = Shared()
        qids, image_ids, texts = _questions_fast(qpath) or _questions(qpath)
        by_id = _annotations_fast(apath, shared) or _annotations(apath, shared)
        found = list(map(by_id.get, qids))
        if None in found:
            qid = qids[found.index(None)]
            raise DataError("question has no annotation", path=apath, record=f"question_id {qid}",
                            expected=f"an annotation for every question of {qpath.name}")
        del by_id
        # image names come from an integer id, so confining the folder confines every file in it
        folder = str(confined(data_dir, split, path=qpath))
        images = _ImageRefs(f"{folder}/COCO_{split}_{{:012d}}.jpg")  # one ImageRef per image
        prompts = list(map(shared.mapping, zip(repeat("question"), texts)))
        samples = list(map(Sample, qids, repeat(self.name), repeat(split), map(images.__getitem__, image_ids),
                           prompts, map(itemgetter(0), found), map(itemgetter(1), found)))  # type: ignore[arg-type]
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

    def score_batch(self, samples: Sequence[Sample], answers: Sequence[Answer]) -> list[SampleScore]:
        """`score` of many samples, the matching done for all at once (`batch_accuracy`)."""
        targets = [s.target for s in samples]
        groups = [None if (g := t.get("loo_groups")) is None else tuple(g) for t in targets]
        values = batch_accuracy(self.variant, [a.value for a in answers], [t["answers"] for t in targets], groups)
        return [SampleScore(s.uid, {"accuracy": v}, NO_FIELDS) for s, v in zip(samples, values)]

    # --- aggregate --------------------------------------------------------------------------
    def metrics(self) -> tuple[Metric, ...]:
        return vqa_metrics()

    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> dict[str, Generation]:
        """The VQA results format: a JSON list of ``{"question_id": int, "answer": str}``."""
        return read_json_answers(path, samples, id_key="question_id", answer_key="answer", unknown_ids="error")

    def score_prediction_columns(self, data_dir: Path, split: str, path: Path) -> ScoredColumns | None:
        """`load` + `read_predictions` + `score_batch` of a whole split as columns (`_scored_columns`)."""
        with gc_paused():
            return _scored_columns(self, data_dir, split, path)


def vqa_score(variant: str, sample: Sample, answer: Answer) -> float:
    """VQA accuracy of one answer under a variant; an unparseable-without-text answer scores 0."""
    pred = answer.value
    if not isinstance(pred, str):
        return 0.0
    target = sample.target
    groups = target.get("loo_groups")
    return SCORERS[variant](pred, tuple(target["answers"]), None if groups is None else tuple(groups))


Annotations = dict[str, tuple[dict[str, object], Mapping[str, str]]]  # question id -> (target, meta)


def _annotations(path: Path, shared: Shared) -> Annotations:
    """The annotations file read generically, every field checked (errors name file, record, field)."""
    annotations = field(read_json(path, "VQAv2 annotations file"), "annotations", path=path, index="(top level)",
                        types=list, expected="a top-level 'annotations' list")
    by_id: Annotations = {}
    first: dict[str, int] = {}
    for i, ann in enumerate(annotations):
        qid = as_id(value(ann, "question_id", _ID, path=path, index=i), path=path, record=f"at index {i}",
                    name="question_id")
        if qid in by_id:  # vqaEval.py would silently score against the last one
            raise DataError(f"second annotation for question {qid} (first at index {first[qid]})",
                            path=path, record=f"at index {i}", field="question_id",
                            expected="one annotation per question")
        first[qid] = i
        by_id[qid] = _annotation(ann, path, i, shared)
    return by_id


def _annotation(ann: object, path: Path, index: int, shared: Shared) -> tuple[dict[str, object], Mapping[str, str]]:
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
    meta = shared.meta(value(ann, "answer_type", (str,), path=path, index=index),
                       value(ann, "question_type", (str,), path=path, index=index))
    groups = loo_groups(answers)
    target: dict[str, object] = {"answers": shared.strings(texts)}
    if groups is not None:
        target["loo_groups"] = groups
    return target, meta


def _annotations_fast(path: Path, shared: Shared) -> Annotations | None:
    """The annotations file decoded into structs of the fields scoring reads (a fraction of the time
    and memory of the generic reader), or None when msgspec is missing or any record is unusual (a
    field of another type, a question annotated twice, no answers, answer ids that repeat): the
    generic reader then reads the file and names what is wrong."""
    schema = _schemas()
    top = read_json_typed(path, "VQAv2 annotations file", schema and schema[1])
    if top is None:
        return None
    annotations, top = top.annotations, None
    if not annotations:
        return None
    # column by column, with the loops in C (map, zip, chain): a split of 214k questions and
    # 2.1M answers is read in a fraction of the time a loop over its records would take
    answer_lists = list(map(_ANSWERS, annotations))
    k = len(answer_lists[0])
    if k == 0 or any(len(a) != k for a in answer_lists):
        return _annotations_by_record(annotations, shared)  # questions with different numbers of answers
    flat = list(chain.from_iterable(answer_lists))
    del answer_lists
    ids = list(map(_ANSWER_ID, flat))
    if ids != list(range(1, k + 1)) * len(annotations) and any(  # the official files number them 1..k
            len(set(ids[i:i + k])) != k for i in range(0, len(ids), k)):
        return None  # answer ids that repeat within a question: the generic reader keeps the loo groups
    del ids
    texts = list(map(shared.intern, map(_ANSWER, flat)))
    del flat
    answers = list(zip(*[iter(texts)] * k))  # (k answers per question), in order
    qids = list(map(str, map(_QUESTION_ID, annotations)))
    metas = list(map(shared.metas, zip(map(_ANSWER_TYPE, annotations), map(_QUESTION_TYPE, annotations))))
    del annotations
    by_id: Annotations = dict(zip(qids, zip([{"answers": a} for a in answers], metas)))
    return by_id if len(by_id) == len(qids) else None  # a question annotated twice: the generic reader says


def _annotations_by_record(annotations: list[Any], shared: Shared) -> Annotations | None:
    """`_annotations_fast` for a file whose questions do not all have the same number of answers."""
    by_id: Annotations = {}
    for ann in annotations:
        qid = str(ann.question_id)
        answers = ann.answers
        if not answers or qid in by_id or len(set(map(_ANSWER_ID, answers))) != len(answers):
            return None
        by_id[qid] = ({"answers": shared.strings(map(_ANSWER, answers))},
                      shared.meta(ann.answer_type, ann.question_type))
    return by_id


def _scored_columns(task: VQAv2, data_dir: Path, split: str, path: Path) -> ScoredColumns | None:
    """What scoring ``path`` sample by sample gives, as columns, read straight from the three files
    (no Sample, Generation, Answer or SampleScore per question): the questions (their order is the
    samples' order), the annotations (every human answer as the integer code of its cleaned string,
    `coded_accuracy`) and the predictions (a code per question). The per-question accuracy is
    vqaEval.py's (`molmo_eval.metrics.vqa`), bit for bit; the meta columns are the samples'. None,
    for the per-sample path to read and report, on anything that path would treat specially: a file
    msgspec cannot read in the usual shape, a question without an annotation or a prediction, a
    prediction of an unknown or repeated question, questions with different numbers of answers or
    with answer ids that repeat (`loo_groups`)."""
    import numpy as np

    task.check_split(split)
    qpath, apath = question_file(data_dir, split), annotation_file(data_dir, split)
    questions = _questions_fast(qpath)
    if questions is None:
        return None
    qids = questions[0]
    del questions
    row = dict(zip(qids, range(len(qids))))
    if len(row) != len(qids):
        return None  # a repeated question id: `load` says which
    schema = _schemas()
    top = read_json_typed(apath, "VQAv2 annotations file", schema and schema[1])
    if top is None or not top.annotations:
        return None
    annotations, top = top.annotations, None
    answer_lists = list(map(_ANSWERS, annotations))
    k = len(answer_lists[0])
    if k == 0 or any(len(a) != k for a in answer_lists) or len(annotations) != len(qids):
        return None
    flat = list(chain.from_iterable(answer_lists))
    del answer_lists
    ids = list(map(_ANSWER_ID, flat))
    if ids != list(range(1, k + 1)) * len(annotations) and any(
            len(set(ids[i:i + k])) != k for i in range(0, len(ids), k)):
        return None
    del ids
    at = list(map(row.get, map(str, map(_QUESTION_ID, annotations))))  # annotation -> question row
    if None in at or len(set(at)) != len(at):
        return None  # an annotation of another question, or a question annotated twice
    order = np.empty(len(at), dtype=np.intp)
    order[np.asarray(at, dtype=np.intp)] = np.arange(len(at))  # question row -> annotation
    answer_type = np.array(list(map(_ANSWER_TYPE, annotations)), dtype=object)[order]
    question_type = np.array(list(map(_QUESTION_TYPE, annotations)), dtype=object)[order]
    keep_until_exit(annotations, flat, row)  # from the console, 2 million answers are not freed one by one
    preds = _prediction_texts(path, row)
    if preds is None:
        return None
    accuracy = coded_accuracy(task.variant, map(_ANSWER, flat), k, preds, order)
    unparseable = sum(1 for t in preds if not t.strip())  # `text_answer`: parse_ok is a non-blank text
    cols = {"accuracy": accuracy, "answer_type": answer_type, "question_type": question_type,
            "split": np.full(len(qids), split, dtype=object)}
    return ScoredColumns(cols, unparseable)


def _prediction_texts(path: Path, row: dict[str, int]) -> list[str] | None:
    """The predicted text of each question row, from a VQA results file; None when the file is not of
    the usual shape or does not answer every question exactly once."""
    records = read_json_typed(path, "predictions file", prediction_schema("question_id", "answer"))
    if records is None or len(records) != len(row):
        return None
    found = list(map(row.get, map(str, map(_QUESTION_ID, records))))
    if None in found or len(set(found)) != len(found):
        return None
    rows: list[int] = found  # type: ignore[assignment]
    texts = list(map(_PRED_ANSWER, records))
    if rows == list(range(len(rows))):  # the usual file: in question order
        return texts
    ordered: list[str] = [""] * len(rows)
    for r, t in zip(rows, texts):
        ordered[r] = t
    return ordered


_PRED_ANSWER = attrgetter("answer")
_ANSWERS, _ANSWER, _ANSWER_ID = attrgetter("answers"), attrgetter("answer"), attrgetter("answer_id")
_QUESTION_ID, _ANSWER_TYPE, _QUESTION_TYPE = (attrgetter("question_id"), attrgetter("answer_type"),
                                              attrgetter("question_type"))


Questions = tuple[list[str], list[int], list[str]]  # question ids, image ids, questions


def _questions(path: Path) -> Questions:
    """Every question's id, image id and text, every field checked."""
    questions = field(read_json(path, "VQAv2 questions file"), "questions", path=path, index="(top level)",
                      types=list, expected="a top-level 'questions' list")
    qids, image_ids, texts = [], [], []
    for i, q in enumerate(questions):
        qids.append(as_id(value(q, "question_id", _ID, path=path, index=i), path=path, record=f"at index {i}",
                          name="question_id"))
        image_ids.append(value(q, "image_id", (int,), path=path, index=i, expected="an integer image id"))
        texts.append(value(q, "question", (str,), path=path, index=i))
    return qids, image_ids, texts


def _questions_fast(path: Path) -> Questions | None:
    schema = _schemas()
    top = read_json_typed(path, "VQAv2 questions file", schema and schema[0])
    if top is None or not top.questions:
        return None
    q = top.questions
    return (list(map(str, map(attrgetter("question_id"), q))), list(map(attrgetter("image_id"), q)),
            list(map(attrgetter("question"), q)))


class _ImageRefs(dict[int, ImageRef]):
    """``refs[image_id]``: the ImageRef of an image, one per image (several questions ask about each)."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = pattern

    def __missing__(self, image_id: int) -> ImageRef:
        ref = self[image_id] = ImageRef(path=self.pattern.format(image_id))
        return ref


@cache
def _schemas() -> tuple[Any, Any] | None:
    """msgspec types of the official questions and annotations files (the fields the loader reads;
    the strict types of `_questions` and `_annotations`), or None without msgspec."""
    try:
        import msgspec
    except ImportError:
        return None

    def struct(name: str, fields: list[tuple[str, Any]], gc: bool = False) -> Any:
        return msgspec.defstruct(name, fields, gc=gc)

    question = struct("Question", [("question_id", int | str), ("image_id", int), ("question", str)])
    answer = struct("Answer", [("answer", str), ("answer_id", int | str)])
    annotation = struct("Annotation", [("question_id", int | str), ("question_type", str), ("answer_type", str),
                                       ("answers", list[answer])])  # type: ignore[valid-type]
    return (struct("Questions", [("questions", list[question])], gc=True),  # type: ignore[valid-type]
            struct("AnnotationFile", [("annotations", list[annotation])], gc=True))  # type: ignore[valid-type]

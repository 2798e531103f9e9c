"""PointQA: pointing questions answered with points (PixMo-Points-eval style) and the text-answer forms
of "Point and Ask" (Mani et al.), LocalQA and LookTwiceQA. A task plugin: load -> prompt -> parse ->
score -> metrics.

Splits and files (``--data-root``/pointqa):

- ``pointing``: ``pixmo_points_eval.jsonl``, one object per line with ``id, image, image_width,
  image_height, label, question, points, masks, boxes, count, kind``. Predicted points are matched
  one-to-one to the target points by the Hungarian algorithm on Euclidean distance; a matched pair is a
  hit when the point's pixel is in the target's mask (COCO RLE or polygons, pycocotools semantics), or in
  its box when the target has no mask. Per example: precision = hits / predicted (0 when nothing was
  predicted), recall = hits / targets, F1 from those; an example without targets scores 1 on all three
  when the model points at nothing and 0 otherwise. Metrics are means over examples.
  ``count_accuracy``: the number of predicted points equals ``count`` (a count stated in words or digits
  counts when the answer has no points at all).
- ``local`` / ``looktwice``: ``pointqa_local_test.json`` / ``pointqa_twice_test.json``, JSON lists of
  ``question_id, image, image_width, image_height, question, point, answer, answers``. The point is
  written into the prompt in the model's coordinate space; ``accuracy`` is an exact match with any
  accepted answer after lowercasing, dropping punctuation and articles, and writing numbers as digits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

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
from molmo_eval.data.files import confined, field, iter_jsonl, read_json
from molmo_eval.data.validate import box_xyxy, coords, image_size, point_in_image, unique
from molmo_eval.metrics import grounding as gr
from molmo_eval.metrics.generic import mean
from molmo_eval.parsing.count import number_words_to_digits, parse_count, states_count
from molmo_eval.parsing.points import format_point, generation_points

FILES = {"pointing": "pixmo_points_eval.jsonl", "local": "pointqa_local_test.json",
         "looktwice": "pointqa_twice_test.json"}
TEXT_SPLITS = ("local", "looktwice")
NAN = float("nan")
COLUMNS = ("precision", "recall", "f1", "count_correct", "accuracy")


# --- loading --------------------------------------------------------------------------------------

_xy = coords  # n finite numbers, or None


def _size(rec: Mapping[str, Any], path: Path, where: str) -> tuple[int, int]:
    return image_size(rec, path=path, index=where, width="image_width", height="image_height")


def _image(data_dir: Path, rec: Mapping[str, Any], path: Path, where: str) -> ImageRef:
    rel = field(rec, "image", path=path, index=where, types=str, expected="a path such as images/<name>.jpg")
    return ImageRef(path=str(confined(data_dir, rel, path=path, record=where)))


def _list_field(rec: Mapping[str, Any], name: str, n: int, path: Path, where: str) -> list[Any]:
    """An optional per-target list: absent or empty means "none for any target"; else one per target."""
    v = rec.get(name)
    if v is None or v == []:
        return [None] * n
    if not isinstance(v, list) or len(v) != n:
        raise DataError(f"has {len(v) if isinstance(v, list) else type(v).__name__} entries for {n} targets",
                        path=path, record=where, field=name, expected="one entry per target point")
    return v


def _targets(rec: Mapping[str, Any], size: tuple[int, int], path: Path, where: str) -> dict[str, Any]:
    raw_points = field(rec, "points", path=path, index=where, types=list, expected="a list of [x, y] pixels")
    points = [_xy(p, 2) for p in raw_points]
    if any(p is None for p in points):
        raise DataError("malformed point", path=path, record=where, field="points", expected="[x, y] numbers")
    n = len(points)
    masks, boxes = _list_field(rec, "masks", n, path, where), _list_field(rec, "boxes", n, path, where)
    rles: list[dict[str, Any] | None] = []
    for j, m in enumerate(masks):
        try:
            rles.append(None if m is None else gr.checked_rle(m, size[1], size[0]))
        except Exception as e:  # pycocotools raises several types for malformed masks
            raise DataError(f"malformed mask {j} ({type(e).__name__}: {e})", path=path, record=where,
                            field="masks", expected="COCO RLE {size, counts} or polygon lists") from None
    out_boxes = []
    for j, b in enumerate(boxes):
        box = None if b is None else box_xyxy(b, path=path, index=f"{where}, target {j}", name="boxes")
        if box is None and rles[j] is None:
            raise DataError(f"target {j} has neither a mask nor a box", path=path, record=where, field="masks",
                            expected="a mask or a box per target")
        out_boxes.append(box)
    count = rec.get("count", n)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise DataError("malformed count", path=path, record=where, field="count", expected="an integer >= 0")
    return {"points": points, "masks": rles, "boxes": out_boxes, "count": count}


def load_pointing(task: str, data_dir: Path, path: Path) -> list[Sample]:
    out = []
    ids: list[tuple[str, str]] = []
    for lineno, rec in iter_jsonl(path, "PixMo-Points-style JSON lines file"):
        where = f"at line {lineno}"
        sid = str(field(rec, "id", path=path, index=where, types=(str, int)))
        ids.append((sid, where))
        size = _size(rec, path, where)
        question = field(rec, "question", path=path, index=where, types=str)
        out.append(Sample(
            id=sid, task=task, split="pointing", image=_image(data_dir, rec, path, where),
            prompt_fields={"question": question, "label": rec.get("label", "")},
            target=_targets(rec, size, path, where), meta={"kind": rec.get("kind")}, image_size=size))
    unique(ids, path=path, name="id")
    return out


def load_point_and_ask(task: str, data_dir: Path, path: Path, split: str) -> list[Sample]:
    data = read_json(path, "Point-and-Ask question file")
    if not isinstance(data, list):
        raise DataError(f"holds a {type(data).__name__}", path=path, expected="a JSON list of questions")
    out = []
    for i, rec in enumerate(data):
        where = f"[{i}]"
        qid = field(rec, "question_id", path=path, index=where, types=(int, str))
        size = _size(rec, path, where)
        point = point_in_image(field(rec, "point", path=path, index=where), size, path=path, index=where,
                               name="point")
        answer = field(rec, "answer", path=path, index=where, types=str)
        answers = rec.get("answers") or [answer]
        if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise DataError("malformed answers", path=path, record=where, field="answers",
                            expected="a list of strings")
        out.append(Sample(
            id=str(qid), task=task, split=split, image=_image(data_dir, rec, path, where),
            prompt_fields={"question": field(rec, "question", path=path, index=where, types=str),
                           "point": point},
            target={"answer": answer, "answers": answers}, meta={"kind": None}, image_size=size))
    unique(((s.id, f"[{i}]") for i, s in enumerate(out)), path=path, name="question_id")
    return out


# --- answers --------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")


def normalize_answer(text: str) -> str:
    """Lowercase, number words -> digits, punctuation -> space, articles dropped, spaces collapsed."""
    t = number_words_to_digits(text.lower())
    t = _ARTICLES.sub(" ", _PUNCT.sub(" ", t))
    return " ".join(t.split())


def pointing_values(sample: Sample, answer: Answer) -> dict[str, float]:
    t = sample.target
    if not answer.parse_ok:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "count_correct": 0.0}
    pts = np.asarray(answer.value if answer.kind is AnswerKind.POINTS else (), dtype=np.float64).reshape(-1, 2)
    m = gr.match_points(pts, np.asarray(t["points"], dtype=np.float64).reshape(-1, 2),
                        gr.region_hit(t["masks"], t["boxes"]))
    n_pred = int(answer.value) if answer.kind is AnswerKind.COUNT else len(pts)
    return {"precision": m.precision, "recall": m.recall, "f1": m.f1,
            "count_correct": float(n_pred == int(t["count"]))}


@dataclass(frozen=True)
class PointQA(Task):
    name: ClassVar[str] = "pointqa"
    description: ClassVar[str] = "Pointing (Hungarian P/R/F1, counting) and Point-and-Ask LocalQA / LookTwiceQA"
    splits: ClassVar[tuple[str, ...]] = ("pointing", "local", "looktwice")
    default_splits: ClassVar[tuple[str, ...]] = ("pointing", "local", "looktwice")
    answer_kind: ClassVar[AnswerKind] = AnswerKind.POINTS
    primary_metric: ClassVar[str] = "f1"
    data_dir: ClassVar[str] = "pointqa"
    breakdowns: ClassVar[tuple[str, ...]] = ("kind",)
    version: ClassVar[str] = "1"

    def data_files(self, data_dir: Path, split: str) -> list[Path]:
        return [data_dir / FILES[self.check_split(split)]]

    def load(self, data_dir: Path, split: str) -> list[Sample]:
        path = self.data_files(data_dir, split)[0]
        if split == "pointing":
            return load_pointing(self.name, data_dir, path)
        return load_point_and_ask(self.name, data_dir, path, split)

    def prompt(self, sample: Sample, style: str = "default", space: CoordSpace | None = None) -> str:
        """Pointing: the question (Molmo's "Point to the ..." as is). Point-and-Ask: the point written in
        ``space``, the model's coordinate space (default: percent for the Molmo style, else pixels)."""
        f = sample.prompt_fields
        if sample.split not in TEXT_SPLITS:
            if style == "molmo":
                return f["question"]
            return f"{f['question']}\nPoint to each one; if there is none, say so."
        space = space or (CoordSpace.PERCENT if style == "molmo" else CoordSpace.PIXELS)
        pt = format_point((f["point"][0], f["point"][1]), space, sample.image_size)
        text = f"Consider the point {pt} in the image. {f['question']}"
        return text if style == "molmo" else text + "\nAnswer the question using a single word or phrase."

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=256)

    def parse(self, sample: Sample, generation: Generation, ctx: ParseContext) -> Answer:
        if sample.split in TEXT_SPLITS:
            text = generation.text.strip()
            return Answer(AnswerKind.TEXT, text, parse_ok=bool(text))
        pts = generation_points(generation, ctx.space, ctx.image_size or sample.image_size)
        if pts is None:
            return Answer(AnswerKind.POINTS, None, parse_ok=False)
        if not pts and generation.points is None:
            n = parse_count(generation.text)
            if n is not None:
                return Answer(AnswerKind.COUNT, n)
            if states_count(generation.text):  # a number too long to be a count
                return Answer(AnswerKind.COUNT, None, parse_ok=False)
        return Answer(AnswerKind.POINTS, pts)

    def score(self, sample: Sample, answer: Answer) -> SampleScore:
        values = dict.fromkeys(COLUMNS, NAN)
        if sample.split in TEXT_SPLITS:
            ok = answer.parse_ok and answer.kind is AnswerKind.TEXT and normalize_answer(str(answer.value)) in {
                normalize_answer(a) for a in sample.target["answers"]}
            values["accuracy"] = float(ok)
        else:
            values.update(pointing_values(sample, answer))
        return SampleScore(sample.uid, values)

    def metrics(self) -> tuple[Metric, ...]:
        return (
            mean("precision", description="Hungarian-matched hits / predicted points, mean over examples"),
            mean("recall", description="Hungarian-matched hits / target points, mean over examples"),
            mean("f1", description="per-example F1 of the matched precision and recall, mean over examples"),
            mean("count_accuracy", "count_correct", description="number of predicted points equals the count"),
            mean("accuracy", description="Point-and-Ask text answers: exact match after normalization"),
        )

    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> dict[str, Generation]:
        """JSON lines ``{"id", "points": [[x, y], ...]}`` (pixels) or ``{"id", "text"}``; entries whose id is
        not in the loaded split are ignored."""
        by_id = {s.id: s.uid for s in samples}
        out: dict[str, Generation] = {}
        for lineno, rec in iter_jsonl(path, "prediction file"):
            where = f"at line {lineno}"
            sid = str(field(rec, "id", path=path, index=where, types=(str, int)))
            if sid not in by_id:
                continue
            if by_id[sid] in out:
                raise DataError("duplicate id", path=path, record=where, field="id")
            out[by_id[sid]] = _prediction(rec, path, where)
        return out


def _prediction(rec: Mapping[str, Any], path: Path, where: str) -> Generation:
    if "points" in rec:
        pts = rec["points"]
        xy = [_xy(p, 2) for p in pts] if isinstance(pts, list) else [None]
        if any(p is None for p in xy):
            raise DataError("malformed points", path=path, record=where, field="points",
                            expected="a list of [x, y] pixels")
        return Generation(text=str(rec.get("text", "")), points=tuple((p[0], p[1]) for p in xy))  # type: ignore[index]
    if "text" in rec:
        return Generation(text=str(rec["text"]))
    raise DataError("missing field", path=path, record=where, field="points", expected="a 'points' or a 'text' field")

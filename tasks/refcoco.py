"""RefCOCO, RefCOCO+ and RefCOCOg (referring expressions): one sample per referring sentence, answered
with a point (Molmo's protocol) or a box. A task plugin: load -> prompt -> parse -> score -> metrics.

Data: the refer toolkit's folder (``--data-root``/refer): ``<dataset>/refs(<splitBy>).p`` (read only
through the restricted unpickler), ``<dataset>/instances.json`` (COCO: bbox ``[x, y, w, h]`` converted
to ``[x1, y1, x2, y2]`` here, polygon or RLE segmentation) and COCO train2014 images under
``images/mscoco/images/train2014``. Splits select refs as refer's ``REFER.getRefIds`` does
(``testA`` = refs whose split contains "A", ``test`` = contains "test", ``val`` exact).

Answer mode: the variant chooses what is *asked* — ``official`` asks the model to point (the reference
Molmo model points), ``box`` asks for a bounding box — and each answer is scored by what it *contains*:
points get ``point_in_box`` / ``point_in_mask`` (the first point), boxes get ``acc@0.5`` / ``mean_iou``.
An unparseable answer counts as wrong in the family the variant asked for. So a box prediction file
scores under either variant; metrics of the family nobody answered have n = 0.
"""

from __future__ import annotations

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
from molmo_eval.data.files import confined, field, read_json, safe_pickle_load
from molmo_eval.data.validate import box_xywh, coords, image_size, unique
from molmo_eval.metrics import grounding as gr
from molmo_eval.metrics.generic import mean
from molmo_eval.parsing.points import generation_box, generation_points

IMAGE_DIR = "images/mscoco/images/train2014"
NAN = float("nan")
BOX_COLUMNS = ("acc@0.5", "iou")
POINT_COLUMNS = ("point_in_box", "point_in_mask")


def ref_in_split(ref_split: str, split: str) -> bool:
    """refer's ``getRefIds(split=...)`` filter."""
    if split in ("testA", "testB", "testC"):
        return split[-1] in ref_split
    if split == "test":
        return "test" in ref_split
    return ref_split == split


@dataclass(frozen=True)
class _Instances:
    images: Mapping[Any, Mapping[str, Any]]
    anns: Mapping[Any, Mapping[str, Any]]


def read_dataset(refs_path: Path, inst_path: Path) -> tuple[list[Any], _Instances]:
    """A dataset's refs and instances. The splits of a dataset are loaded one after the other from
    the same two files (the restricted unpickler is slow), so the last dataset read is kept while
    neither file changes (size, modification time, inode)."""
    key = (_identity(refs_path), _identity(inst_path))
    if _LAST.get("key") == key:
        return _LAST["value"]  # type: ignore[no-any-return]
    refs = safe_pickle_load(refs_path)
    if not isinstance(refs, list):
        raise DataError(f"holds a {type(refs).__name__}", path=refs_path, expected="a list of ref dicts")
    value = (refs, read_instances(inst_path))
    _LAST.clear()
    if key[0] is not None and key[1] is not None:
        _LAST.update(key=key, value=value)
    return value


_LAST: dict[str, Any] = {}


def _identity(path: Path) -> tuple[str, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None  # the readers say what is wrong
    return str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino


def read_instances(path: Path) -> _Instances:
    inst = read_json(path, "COCO instances file")
    images = field(inst, "images", path=path, index="(top level)", types=list)
    anns = field(inst, "annotations", path=path, index="(top level)", types=list)
    img_ids = [(field(im, "id", path=path, index=f"images[{i}]", types=(int, str)), f"images[{i}]")
               for i, im in enumerate(images)]
    ann_ids = [(field(a, "id", path=path, index=f"annotations[{i}]", types=(int, str)), f"annotations[{i}]")
               for i, a in enumerate(anns)]
    unique(img_ids, path=path, name="id")
    unique(ann_ids, path=path, name="id")
    return _Instances({k: im for (k, _), im in zip(img_ids, images)}, {k: a for (k, _), a in zip(ann_ids, anns)})


def _ref_fields(ref: Any, path: Path, i: int) -> tuple[Any, Any, str, list[Any]]:
    where = f"refs[{i}]"
    ann_id = field(ref, "ann_id", path=path, index=where, types=(int, str))
    image_id = field(ref, "image_id", path=path, index=where, types=(int, str))
    split = field(ref, "split", path=path, index=where, types=str)
    sents = field(ref, "sentences", path=path, index=where, types=list,
                  expected="a list of {tokens, raw, sent_id, sent}")
    return ann_id, image_id, split, sents


def _target(ann: Mapping[str, Any], img: Mapping[str, Any], inst_path: Path) -> tuple[list[float], dict, tuple]:
    where = f"annotation {ann.get('id')}"
    bbox = box_xywh(field(ann, "bbox", path=inst_path, index=where), path=inst_path, index=where)
    w, h = image_size(img, path=inst_path, index=f"image {img.get('id')}")
    segm = field(ann, "segmentation", path=inst_path, index=where)
    try:
        rle = gr.checked_rle(segm, h, w)
    except Exception as e:  # pycocotools raises several types for malformed polygons
        raise DataError(f"malformed segmentation ({type(e).__name__}: {e})", path=inst_path, record=where,
                        field="segmentation", expected="COCO polygons or RLE") from None
    return list(gr.xywh_to_xyxy(bbox)), rle, (w, h)


@dataclass(frozen=True)
class _Refer(Task):
    """Shared by the three datasets; subclasses name the folder and the split scheme."""

    dataset: ClassVar[str]
    split_by: ClassVar[str]
    answer_kind: ClassVar[AnswerKind] = AnswerKind.POINTS
    primary_metric: ClassVar[str] = "point_in_box"
    data_dir: ClassVar[str] = "refer"
    variants: ClassVar[tuple[str, ...]] = ("official", "box")
    version: ClassVar[str] = "1"

    # --- data -----------------------------------------------------------------------------------
    def data_files(self, data_dir: Path, split: str) -> list[Path]:
        self.check_split(split)
        folder = data_dir / self.dataset
        return [folder / f"refs({self.split_by}).p", folder / "instances.json"]

    def load(self, data_dir: Path, split: str) -> list[Sample]:
        refs_path, inst_path = self.data_files(data_dir, split)
        refs, inst = read_dataset(refs_path, inst_path)
        out: list[Sample] = []
        where: list[str] = []
        for i, ref in enumerate(refs):
            ann_id, image_id, ref_split, sents = _ref_fields(ref, refs_path, i)
            if ref_in_split(ref_split, split):
                got = self._ref_samples(data_dir, split, ref, i, (ann_id, image_id, sents), inst,
                                        (refs_path, inst_path))
                out.extend(got)
                where.extend(f"refs[{i}].sentences[{j}]" for j in range(len(got)))
        unique(((s.id, w) for s, w in zip(out, where)), path=refs_path, name="sent_id")
        return out

    def _ref_samples(self, data_dir: Path, split: str, ref: Mapping[str, Any], i: int, ids: tuple,
                     inst: _Instances, paths: tuple[Path, Path]) -> list[Sample]:
        ann_id, image_id, sents = ids
        refs_path, inst_path = paths
        ann, img = inst.anns.get(ann_id), inst.images.get(image_id)
        if ann is None or img is None:
            missing = ("ann_id", ann_id) if ann is None else ("image_id", image_id)
            raise DataError(f"{missing[0]} {missing[1]!r} is not in {inst_path.name}", path=refs_path,
                            record=f"refs[{i}]", field=missing[0])
        box, rle, size = _target(ann, img, inst_path)
        name = field(img, "file_name", path=inst_path, index=f"image {image_id}", types=str)
        image = ImageRef(path=str(confined(data_dir, f"{IMAGE_DIR}/{name}", path=inst_path,
                                           record=f"image {image_id}")))
        samples = []
        for j, sent in enumerate(sents):
            where = f"refs[{i}].sentences[{j}]"
            sid = field(sent, "sent_id", path=refs_path, index=where, types=(int, str))
            text = field(sent, "sent", path=refs_path, index=where, types=str)
            samples.append(Sample(
                id=str(sid), task=self.name, split=split, image=image,
                prompt_fields={"expression": text, "raw": sent.get("raw", text)},
                target={"box": box, "mask": rle, "ref_id": ref.get("ref_id"), "ann_id": ann_id},
                meta={}, image_size=size))
        return samples

    # --- per sample -----------------------------------------------------------------------------
    def prompt(self, sample: Sample, style: str = "default", space: CoordSpace | None = None) -> str:
        expr = sample.prompt_fields["expression"]
        if self.variant == "box":
            return (f'Give the bounding box of the region this sentence describes: "{expr}". '
                    "Answer as [x1, y1, x2, y2].")
        if style == "molmo":
            return f"Point to {expr}"
        return f'Point to the object that this phrase describes: "{expr}". Answer with a single point.'

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=64)

    def parse(self, sample: Sample, generation: Generation, ctx: ParseContext) -> Answer:
        """Points (the first is scored) or a box, in the order the variant asked for them."""
        size = ctx.image_size or sample.image_size
        readers = [self._points, self._box]
        for read in readers if self.variant != "box" else readers[::-1]:
            answer = read(generation, ctx, size)
            if answer is not None:
                return answer
        return Answer(self._asked(), None, parse_ok=False)

    @staticmethod
    def _points(gen: Generation, ctx: ParseContext, size: tuple[int, int] | None) -> Answer | None:
        pts = generation_points(gen, ctx.space, size)
        return Answer(AnswerKind.POINTS, pts) if pts else None

    @staticmethod
    def _box(gen: Generation, ctx: ParseContext, size: tuple[int, int] | None) -> Answer | None:
        box = generation_box(gen, ctx.space, size)
        return None if box is None else Answer(AnswerKind.BOX, box)

    def _asked(self) -> AnswerKind:
        return AnswerKind.BOX if self.variant == "box" else AnswerKind.POINTS

    def score(self, sample: Sample, answer: Answer) -> SampleScore:
        values = dict.fromkeys(BOX_COLUMNS + POINT_COLUMNS, NAN)
        kind = answer.kind if answer.parse_ok and answer.value else self._asked()
        if kind is AnswerKind.BOX:
            iou = float(gr.box_iou(answer.value, sample.target["box"])) if answer.parse_ok else 0.0
            values.update({"acc@0.5": float(gr.acc_at(iou)), "iou": iou})
        elif answer.parse_ok and answer.value:
            x, y = answer.value[0]
            values["point_in_box"] = float(gr.points_in_boxes(np.array([x, y]), np.array(sample.target["box"])))
            mask = sample.target.get("mask")
            values["point_in_mask"] = NAN if mask is None else float(gr.point_in_mask(x, y, mask))
        else:
            values.update({"point_in_box": 0.0, "point_in_mask": 0.0})
        return SampleScore(sample.uid, values)

    # --- aggregate ------------------------------------------------------------------------------
    def metrics(self) -> tuple[Metric, ...]:
        return (
            mean("point_in_box", description="the first predicted point lies in the target box (borders count)"),
            mean("point_in_mask", description="the first predicted point's pixel lies in the target mask"),
            mean("acc@0.5", description="predicted box has IoU >= 0.5 with the target box"),
            mean("mean_iou", "iou", description="mean IoU of predicted and target boxes"),
        )

    # --- predictions written elsewhere ------------------------------------------------------------
    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> dict[str, Generation]:
        """``[{"sent_id": .., "bbox": [x1, y1, x2, y2]}]`` or ``[{"sent_id": .., "point": [x, y]}]``,
        pixels. Entries for sentences outside the loaded split are ignored (one file may hold all splits)."""
        data = read_json(path, "prediction file")
        if not isinstance(data, list):
            raise DataError(f"holds a {type(data).__name__}", path=path,
                            expected='a JSON list of {"sent_id", "bbox"} or {"sent_id", "point"}')
        by_id = {s.id: s.uid for s in samples}
        out: dict[str, Generation] = {}
        for i, rec in enumerate(data):
            sid = str(field(rec, "sent_id", path=path, index=i, types=(int, str)))
            if sid not in by_id:
                continue
            if by_id[sid] in out:
                raise DataError("duplicate sent_id", path=path, record=i, field="sent_id")
            out[by_id[sid]] = _prediction(rec, path, i)
        return out


def _numbers(v: Any, n: int) -> tuple[float, ...] | None:
    xs = coords(v, n) if isinstance(v, list) else None
    return None if xs is None else tuple(xs)


def _prediction(rec: Mapping[str, Any], path: Path, i: int) -> Generation:
    if "bbox" in rec:
        box = _numbers(rec["bbox"], 4)
        if box is None:
            raise DataError("malformed box", path=path, record=i, field="bbox", expected="[x1, y1, x2, y2] numbers")
        return Generation(text="", box=box)  # type: ignore[arg-type]
    if "point" in rec:
        pt = _numbers(rec["point"], 2)
        if pt is None:
            raise DataError("malformed point", path=path, record=i, field="point", expected="[x, y] numbers")
        return Generation(text="", points=(pt,))  # type: ignore[arg-type]
    raise DataError("missing field", path=path, record=i, field="bbox", expected="a 'bbox' or a 'point' field")


@dataclass(frozen=True)
class RefCOCO(_Refer):
    name: ClassVar[str] = "refcoco"
    description: ClassVar[str] = "RefCOCO (UNC splits): referring expressions answered by pointing or a box"
    dataset: ClassVar[str] = "refcoco"
    split_by: ClassVar[str] = "unc"
    splits: ClassVar[tuple[str, ...]] = ("val", "testA", "testB")
    default_splits: ClassVar[tuple[str, ...]] = ("val", "testA", "testB")


@dataclass(frozen=True)
class RefCOCOPlus(_Refer):
    name: ClassVar[str] = "refcoco+"
    description: ClassVar[str] = "RefCOCO+ (UNC splits, no location words): pointing or a box"
    dataset: ClassVar[str] = "refcoco+"
    split_by: ClassVar[str] = "unc"
    splits: ClassVar[tuple[str, ...]] = ("val", "testA", "testB")
    default_splits: ClassVar[tuple[str, ...]] = ("val", "testA", "testB")


@dataclass(frozen=True)
class RefCOCOg(_Refer):
    name: ClassVar[str] = "refcocog"
    description: ClassVar[str] = "RefCOCOg (UMD splits): longer referring expressions, pointing or a box"
    dataset: ClassVar[str] = "refcocog"
    split_by: ClassVar[str] = "umd"
    splits: ClassVar[tuple[str, ...]] = ("val", "test")
    default_splits: ClassVar[tuple[str, ...]] = ("val", "test")

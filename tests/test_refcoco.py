"""RefCOCO / RefCOCO+ / RefCOCOg: the refer layout, splits, point and box scoring, predictions, errors."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
from PIL import Image

from molmo_eval.core.errors import DataError, UnknownName
from molmo_eval.core.task import ParseContext
from molmo_eval.core.types import CoordSpace, Generation
from molmo_eval.metrics import stats
from molmo_eval.tasks.refcoco import RefCOCO, RefCOCOg, RefCOCOPlus, ref_in_split

W, H = 100, 50

# image 1: ann 11 a square [10, 10, 30, 20] (xywh) whose polygon is the left half only (x 10..25)
# image 2: ann 21 [50, 0, 50, 50]
ANNS = [
    {"id": 11, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 20], "area": 300, "iscrowd": 0,
     "segmentation": [[10, 10, 25, 10, 25, 30, 10, 30]]},
    {"id": 21, "image_id": 2, "category_id": 2, "bbox": [50, 0, 50, 50], "area": 2500, "iscrowd": 0,
     "segmentation": [[50, 0, 100, 0, 100, 50, 50, 50]]},
]


def _ref(ref_id, ann_id, image_id, split, sent_ids):
    sents = [{"tokens": ["the", "thing"], "raw": f"The thing {s}", "sent_id": s, "sent": f"the thing {s}"}
             for s in sent_ids]
    return {"ref_id": ref_id, "ann_id": ann_id, "image_id": image_id, "split": split, "sentences": sents,
            "sent_ids": sent_ids, "file_name": f"COCO_train2014_{image_id:012d}_{ref_id}.jpg", "category_id": 1}


REFS = [
    _ref(1, 11, 1, "val", [100, 101]),
    _ref(2, 21, 2, "testA", [200]),
    _ref(3, 11, 1, "testB", [300, 301, 302]),
    _ref(4, 21, 2, "train", [400]),
    _ref(5, 21, 2, "test", [500]),
]


def make_refer(root: Path, dataset: str = "refcoco", split_by: str = "unc", refs=None, instances=None) -> Path:
    folder = root / "refer"
    (folder / dataset).mkdir(parents=True, exist_ok=True)
    with open(folder / dataset / f"refs({split_by}).p", "wb") as f:
        pickle.dump(REFS if refs is None else refs, f, protocol=2)
    inst = instances or {
        "images": [{"id": i, "width": W, "height": H, "file_name": f"COCO_train2014_{i:012d}.jpg"} for i in (1, 2)],
        "annotations": ANNS, "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "cup"}]}
    (folder / dataset / "instances.json").write_text(json.dumps(inst))
    img_dir = folder / "images/mscoco/images/train2014"
    img_dir.mkdir(parents=True, exist_ok=True)
    for i in (1, 2):
        Image.new("RGB", (W, H), (i * 60, 80, 120)).save(img_dir / f"COCO_train2014_{i:012d}.jpg", quality=95)
    return folder


@pytest.fixture
def refer(tmp_path: Path) -> Path:
    return make_refer(tmp_path)


def test_split_filter_follows_refer():
    assert ref_in_split("testA", "testA") and ref_in_split("testAB", "testA") and ref_in_split("testAB", "testB")
    assert not ref_in_split("testB", "testA") and not ref_in_split("val", "testA")
    assert ref_in_split("test", "test") and ref_in_split("testA", "test") and not ref_in_split("val", "test")
    assert ref_in_split("val", "val") and not ref_in_split("train", "val")


def test_load_one_sample_per_sentence(refer):
    task = RefCOCO()
    val = task.load(refer, "val")
    assert [s.id for s in val] == ["100", "101"]
    s = val[0]
    assert s.target["box"] == [10.0, 10.0, 40.0, 30.0]  # xywh -> xyxy
    assert s.image_size == (W, H)
    assert s.prompt_fields["expression"] == "the thing 100"
    assert Path(s.image.path).is_file()
    assert [x.id for x in task.load(refer, "testA")] == ["200"]
    assert [x.id for x in task.load(refer, "testB")] == ["300", "301", "302"]
    with pytest.raises(UnknownName):
        task.load(refer, "test")


def test_refcoco_plus_and_g_use_their_folders(tmp_path):
    make_refer(tmp_path, "refcoco+", "unc")
    make_refer(tmp_path, "refcocog", "umd")
    root = tmp_path / "refer"
    assert RefCOCOPlus().data_files(root, "val")[0].name == "refs(unc).p"
    assert [s.id for s in RefCOCOPlus().load(root, "testA")] == ["200"]
    assert RefCOCOg().data_files(root, "test")[0] == root / "refcocog" / "refs(umd).p"
    assert [s.id for s in RefCOCOg().load(root, "test")] == ["200", "300", "301", "302", "500"]


def _score(task, sample, text, space=CoordSpace.PERCENT, **gen):
    answer = task.parse(sample, Generation(text=text, **gen), ParseContext(space=space, image_size=sample.image_size))
    return answer, task.score(sample, answer).values


def test_point_scoring(refer):
    task = RefCOCO()
    s = task.load(refer, "val")[0]  # box [10, 10, 40, 30], mask x in [10, 25], y in [10, 30]
    # 20% x 40% of 100 x 50 = (20, 20): inside box and mask
    _, v = _score(task, s, '<point x="20" y="40" alt="thing">thing</point>')
    assert (v["point_in_box"], v["point_in_mask"]) == (1.0, 1.0) and math.isnan(v["acc@0.5"])
    # (35, 20): inside the box, outside the polygon (right half)
    _, v = _score(task, s, '<point x="35" y="40">thing</point>')
    assert (v["point_in_box"], v["point_in_mask"]) == (1.0, 0.0)
    # on the box's right border (40, 30) counts for the box
    _, v = _score(task, s, "(40, 30)", CoordSpace.PIXELS)
    assert v["point_in_box"] == 1.0
    # only the first point is scored
    _, v = _score(task, s, "(90, 45) (20, 20)", CoordSpace.PIXELS)
    assert v["point_in_box"] == 0.0
    # reference model bins: bin 19 -> 19.5% of 100 = 19.5; bin 39 -> 39.5% of 50 = 19.75
    _, v = _score(task, s, "<point> <x_19> <y_39>", CoordSpace.BINS)
    assert (v["point_in_box"], v["point_in_mask"]) == (1.0, 1.0)


def test_box_scoring_and_variant(refer):
    s = RefCOCO().load(refer, "val")[0]
    box = RefCOCO().with_variant("box")
    # [10, 10, 40, 20] vs target [10, 10, 40, 30]: IoU = 300 / 600 = 0.5 exactly -> a hit
    a, v = _score(box, s, "[10, 10, 40, 20]", CoordSpace.PIXELS)
    assert v["iou"] == pytest.approx(0.5) and v["acc@0.5"] == 1.0 and math.isnan(v["point_in_box"])
    # unparseable counts against the family the variant asked for
    a, v = _score(box, s, "I cannot tell.")
    assert not a.parse_ok and (v["acc@0.5"], v["iou"]) == (0.0, 0.0) and math.isnan(v["point_in_box"])
    a, v = _score(RefCOCO(), s, "I cannot tell.")
    assert not a.parse_ok and (v["point_in_box"], v["point_in_mask"]) == (0.0, 0.0) and math.isnan(v["iou"])
    # a box answer under the pointing variant is still scored as a box
    a, v = _score(RefCOCO(), s, "[0, 0, 100, 50]", CoordSpace.PIXELS)
    assert v["iou"] == pytest.approx(600 / 5000) and math.isnan(v["point_in_box"])
    assert "bounding box" in box.prompt(s) and RefCOCO().prompt(s, "molmo") == "Point to the thing 100"


def test_metrics_summarize_over_splits(refer):
    task = RefCOCO()
    samples = task.load(refer, "val") + task.load(refer, "testB")
    texts = ["(20, 20)", "(35, 20)", "(0, 0)", "(12, 12)", "no idea"]  # all on the box of ann 11
    scores = [task.score(s, task.parse(s, Generation(text=t), ParseContext(CoordSpace.PIXELS, s.image_size)))
              for s, t in zip(samples, texts, strict=True)]
    cols = stats.columns(samples, scores)
    overall, groups = stats.summarize(task.metrics(), cols, task.breakdowns, seed=0, label="refcoco", n_boot=200)
    # point_in_box: hit, hit, miss, hit, unparseable -> 3/5; point_in_mask: hit, miss, miss, hit, miss -> 2/5
    assert overall["point_in_box"].value == pytest.approx(3 / 5) and overall["point_in_box"].n == 5
    assert overall["point_in_mask"].value == pytest.approx(2 / 5)
    assert overall["acc@0.5"].n == 0 and math.isnan(overall["acc@0.5"].value)
    assert groups["split"]["val"]["point_in_box"].value == pytest.approx(1.0)
    assert groups["split"]["testB"]["point_in_box"].value == pytest.approx(1 / 3)
    lo, hi = overall["point_in_box"].ci_low, overall["point_in_box"].ci_high
    assert lo <= 0.6 <= hi


def test_read_predictions(refer, tmp_path):
    task = RefCOCO()
    samples = task.load(refer, "val")
    p = tmp_path / "preds.json"
    p.write_text(json.dumps([{"sent_id": 100, "bbox": [10, 10, 40, 20]}, {"sent_id": 101, "point": [20, 20]},
                             {"sent_id": 999, "point": [1, 1]}]))
    preds = task.read_predictions(p, samples)
    assert set(preds) == {s.uid for s in samples}
    ctx = ParseContext(task.prediction_space(), None)
    v0 = task.score(samples[0], task.parse(samples[0], preds[samples[0].uid], ctx)).values
    v1 = task.score(samples[1], task.parse(samples[1], preds[samples[1].uid], ctx)).values
    assert v0["acc@0.5"] == 1.0 and v1["point_in_mask"] == 1.0
    for bad, fld in [([{"sent_id": 100, "bbox": [1, 2, 3]}], "bbox"), ([{"sent_id": 100}], "bbox"),
                     ([{"bbox": [1, 2, 3, 4]}], "sent_id"), ([{"sent_id": 100, "point": [1, "x"]}], "point")]:
        p.write_text(json.dumps(bad))
        with pytest.raises(DataError) as e:
            task.read_predictions(p, samples)
        assert e.value.field == fld
    p.write_text(json.dumps([{"sent_id": 100, "point": [1, 1]}, {"sent_id": 100, "point": [2, 2]}]))
    with pytest.raises(DataError, match="duplicate"):
        task.read_predictions(p, samples)


def test_data_errors_name_file_record_and_field(tmp_path):
    refs = [dict(REFS[0])]
    del refs[0]["sentences"]
    folder = make_refer(tmp_path / "a", refs=refs)
    with pytest.raises(DataError) as e:
        RefCOCO().load(folder, "val")
    assert e.value.field == "sentences" and "refs(unc).p" in str(e.value) and "refs[0]" in str(e.value)

    refs = [dict(REFS[0], ann_id=999)]
    folder = make_refer(tmp_path / "b", refs=refs)
    with pytest.raises(DataError, match="ann_id 999"):
        RefCOCO().load(folder, "val")

    folder = make_refer(tmp_path / "c")
    (folder / "refcoco" / "instances.json").unlink()
    with pytest.raises(DataError, match="instances.json"):
        RefCOCO().load(folder, "val")


def test_pickle_with_objects_is_refused(tmp_path):
    folder = make_refer(tmp_path)
    with open(folder / "refcoco" / "refs(unc).p", "wb") as f:
        pickle.dump([Path("/etc/passwd")], f)  # a class instance: must never be constructed
    with pytest.raises(DataError, match="refused"):
        RefCOCO().load(folder, "val")


def test_image_paths_stay_inside_the_data_root(tmp_path):
    inst = {"images": [{"id": 1, "width": W, "height": H, "file_name": "../../../../../../etc/passwd"},
                       {"id": 2, "width": W, "height": H, "file_name": "x.jpg"}],
            "annotations": ANNS, "categories": []}
    folder = make_refer(tmp_path, instances=inst)
    with pytest.raises(DataError, match="escapes"):
        RefCOCO().load(folder, "val")

"""The synthetic world's benchmark files: official formats, the statistics that define each benchmark,
exact masks and boxes, determinism. A tiny world is generated once per module (a few seconds)."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from molmo_eval.data.files import safe_pickle_load
from molmo_eval.reference_model.world import formats
from molmo_eval.reference_model.world.ontology import CATEGORY_NAMES, COLOURS, LOCATION_WORDS
from molmo_eval.reference_model.world.rng import EVAL_BASE, eval_scene_id, train_scene_id
from molmo_eval.reference_model.world.scene import SceneSpec, make_scene
from molmo_eval.reference_model.world.world import WorldSize, write_world

TINY = WorldSize(vqav2=6, textvqa=6, gqa=5, refer=3, pope=8, mmbench=20, pointqa=20)
csv.field_size_limit(1 << 30)


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("world")
    write_world(root, TINY, seed=0)
    return root


# --- determinism and seed spaces -------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files_and_other_seed_differs(world: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    write_world(again, TINY, seed=0)
    assert tree_digest(again) == tree_digest(world)
    other = tmp_path / "other"
    write_world(other, TINY, seed=1, benchmarks=["pope", "vqav2"])
    a, b = tree_digest(world), tree_digest(other)
    assert a["pope/coco_pope_random.json"] != b["pope/coco_pope_random.json"]
    assert a["vqav2/v2_mscoco_val2014_annotations.json"] != b["vqav2/v2_mscoco_val2014_annotations.json"]


def test_train_and_eval_scene_ids_are_disjoint_by_construction() -> None:
    for i in range(2000):
        assert train_scene_id(0, "ask", i) < EVAL_BASE <= eval_scene_id(0, "vqav2", i)
        assert train_scene_id(7, "point", i) < EVAL_BASE <= eval_scene_id(7, "pope", i)


def test_scenes_are_a_pure_function_of_their_id() -> None:
    a, b = make_scene(123), make_scene(123)
    assert np.array_equal(a.image, b.image)
    assert [(o.category, o.colour, o.box) for o in a.objects] == [(o.category, o.colour, o.box) for o in b.objects]
    assert not np.array_equal(a.image, make_scene(124).image)


def test_world_json_records_digests_and_counts(world: Path) -> None:
    info = json.loads((world / "world.json").read_text())
    assert set(info["benchmarks"]) == {"vqav2", "textvqa", "gqa", "refer", "pope", "mmbench", "pointqa"}
    assert info["benchmarks"]["pope"]["samples"] == {"random": 48, "popular": 48, "adversarial": 48}
    assert all(len(b["digests"]["pixels"]) == 64 for b in info["benchmarks"].values())


# --- masks and boxes agree with the drawn pixels ------------------------------------------------------

@pytest.mark.parametrize("scene_id", [3, 17, 99, EVAL_BASE + 5])
def test_visible_masks_are_disjoint_and_carry_their_colour(scene_id: int) -> None:
    scene = make_scene(scene_id)
    cover = np.zeros((scene.height, scene.width), dtype=int)
    for o in scene.objects:
        cover += o.mask
        x1, y1, x2, y2 = o.box
        rows, cols = np.nonzero(o.mask)
        assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x1, y1, x2, y2)
        assert o.area == len(rows) and o.area >= 0.55 * o.full_area
        # the object's own colour is painted where its mask says it is (a shifted mask would fail)
        own = np.all(scene.image[o.mask] == COLOURS[o.colour], axis=1).mean()
        assert own > 0.2, (o.category, o.colour, own)
        x, y = o.point
        assert o.mask[int(y), int(x)]
    assert cover.max() <= 1


def test_rle_matches_pycocotools_and_polygons_decode_exactly() -> None:
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(0)
    masks = [rng.random((13, 17)) < p for p in (0.2, 0.5, 0.8)] + [o.mask for o in make_scene(5).objects]
    ring = np.ones((9, 9), dtype=bool)
    ring[3:6, 3:6] = False  # a hole: needs the keyhole cut
    masks.append(ring)
    for m in masks:
        ours = formats.rle_encode(m)
        theirs = mask_api.encode(np.asfortranarray(m.astype(np.uint8)))
        assert ours["counts"] == theirs["counts"].decode() and ours["size"] == list(m.shape)
        h, w = m.shape
        polys = formats.mask_polygons(m)
        decoded = mask_api.decode(mask_api.merge(mask_api.frPyObjects(polys, h, w))).astype(bool)
        assert np.array_equal(decoded, m)


# --- VQAv2 -------------------------------------------------------------------------------------------

def test_vqav2_official_format_and_statistics(world: Path) -> None:
    from molmo_eval.reference_model.world.vqa import VQA_QUESTION_TYPES

    qs = json.loads((world / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json").read_text())
    an = json.loads((world / "vqav2/v2_mscoco_val2014_annotations.json").read_text())
    assert {"info", "task_type", "data_type", "license", "data_subtype", "questions"} <= set(qs)
    assert qs["data_subtype"] == "val2014" and qs["task_type"] == "Open-Ended"
    assert len(qs["questions"]) == len(an["annotations"]) == 18
    for q, a in zip(qs["questions"], an["annotations"], strict=True):
        assert set(q) == {"image_id", "question", "question_id"} and q["question_id"] == a["question_id"]
        assert set(a) == {"question_type", "multiple_choice_answer", "answers", "image_id", "answer_type",
                          "question_id"}
        assert len(VQA_QUESTION_TYPES) == 65 and a["question_type"] in VQA_QUESTION_TYPES
        assert q["question"].lower().startswith(a["question_type"]) or a["question_type"] == "none of the above"
        assert a["answer_type"] in ("yes/no", "number", "other")
        assert [x["answer_id"] for x in a["answers"]] == list(range(1, 11))
        assert {x["answer_confidence"] for x in a["answers"]} <= {"yes", "maybe", "no"}
        counts = Counter(x["answer"] for x in a["answers"])
        assert counts[a["multiple_choice_answer"]] == max(counts.values())
        img = world / f"vqav2/val2014/COCO_val2014_{q['image_id']:012d}.jpg"
        with Image.open(img) as im:
            assert im.format == "JPEG"
    yn = Counter(a["multiple_choice_answer"] for a in an["annotations"] if a["answer_type"] == "yes/no")
    assert abs(yn["yes"] - yn["no"]) <= 1


def test_vqa_question_type_is_the_longest_official_prefix() -> None:
    from molmo_eval.reference_model.world.vqa import question_type

    assert question_type("How many people are in the image?") == "how many people are in"
    assert question_type("What color is the car?") == "what color is the"
    assert question_type("What shape is the red one?") == "what"
    assert question_type("Nothing like this?") == "none of the above"


def test_vqa_answers_disagree_realistically() -> None:
    from molmo_eval.reference_model.world.annotators import vqa_answers
    from molmo_eval.reference_model.world.questions import QA
    from molmo_eval.reference_model.world.rng import Rng

    qa = QA("How many cars are there?", "2", "count", "number", (), ("1", "3"))
    sets = [vqa_answers(qa, Rng(i)) for i in range(400)]
    identical = sum(len({a for a, _ in s}) == 1 for s in sets) / len(sets)
    assert 0.3 < identical < 0.6  # many unanimous questions, many with variation
    flat = [a for s in sets for a, _ in s]
    assert "two" in flat and "3" in flat  # number words and occasional wrong answers
    assert all(sum(a == "2" for a, _ in s) >= 3 for s in sets)  # the true answer always wins


# --- TextVQA and GQA ---------------------------------------------------------------------------------

def test_textvqa_official_format(world: Path) -> None:
    d = json.loads((world / "textvqa/TextVQA_0.5.1_val.json").read_text())
    assert d["dataset_version"] == "0.5.1" and d["dataset_type"] == "val"
    for r in d["data"]:
        assert {"question", "image_id", "image_classes", "flickr_original_url", "flickr_300k_url", "image_width",
                "image_height", "answers", "question_tokens", "question_id", "set_name"} == set(r)
        assert len(r["answers"]) == 10 and r["set_name"] == "val"
        with Image.open(world / f"textvqa/train_images/{r['image_id']}.jpg") as im:
            assert im.size == (r["image_width"], r["image_height"])


def test_gqa_official_format_entailment_and_balance(world: Path) -> None:
    qs = json.loads((world / "gqa/testdev_balanced_questions.json").read_text())
    keys = {"semantic", "entailed", "equivalent", "question", "imageId", "isBalanced", "groups", "answer",
            "semanticStr", "annotations", "types", "fullAnswer"}
    for qid, q in qs.items():
        assert set(q) == keys and isinstance(qid, str) and q["isBalanced"] is True
        assert q["types"]["structural"] in ("query", "verify", "logical", "choose", "compare")
        assert q["types"]["semantic"] in ("obj", "attr", "cat", "rel", "global")
        assert all(e in qs and e != qid for e in q["entailed"])  # consistency is computable
        assert all({"operation", "dependencies", "argument"} == set(op) for op in q["semantic"])
        assert (world / f"gqa/images/{q['imageId']}.jpg").is_file()
    assert any(q["entailed"] for q in qs.values())
    yn = Counter(q["answer"] for q in qs.values() if q["answer"] in ("yes", "no"))
    assert abs(yn["yes"] - yn["no"]) <= max(2, 0.1 * sum(yn.values()))


# --- RefCOCO family ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,refs,splits", [("refcoco", "refs(unc).p", {"val", "testA", "testB"}),
                                              ("refcoco+", "refs(unc).p", {"val", "testA", "testB"}),
                                              ("refcocog", "refs(umd).p", {"val", "test"})])
def test_refer_pickles_are_plain_data_with_the_refer_keys(world: Path, name: str, refs: str, splits: set) -> None:
    data = safe_pickle_load(world / "refer" / name / refs)  # the restricted unpickler admits it
    inst = json.loads((world / "refer" / name / "instances.json").read_text())
    anns = {a["id"]: a for a in inst["annotations"]}
    images = {i["id"]: i for i in inst["images"]}
    assert {r["split"] for r in data} == splits
    for r in data:
        assert set(r) == {"sent_ids", "file_name", "ann_id", "ref_id", "image_id", "split", "sentences",
                          "category_id"}
        assert r["sent_ids"] == [s["sent_id"] for s in r["sentences"]]
        for s in r["sentences"]:
            assert set(s) == {"tokens", "raw", "sent_id", "sent"} and s["sent"] == " ".join(s["tokens"])
        ann = anns[r["ann_id"]]
        assert ann["image_id"] == r["image_id"] and ann["category_id"] == r["category_id"]
        assert (world / "refer/images/mscoco/images/train2014" / images[r["image_id"]]["file_name"]).is_file()
    if name == "refcoco+":
        words = {w for r in data for s in r["sentences"] for w in s["tokens"]}
        assert not words & LOCATION_WORDS
    if name == "refcocog":
        lengths = [len(s["tokens"]) for r in data for s in r["sentences"]]
        assert np.mean(lengths) > 7


def test_refcoco_testA_is_people_and_testB_other_objects(world: Path) -> None:
    data = safe_pickle_load(world / "refer/refcoco/refs(unc).p")
    assert {r["category_id"] for r in data if r["split"] == "testA"} == {1}
    assert 1 not in {r["category_id"] for r in data if r["split"] == "testB"}
    per_image = Counter((r["image_id"], r["category_id"]) for r in data)
    inst = json.loads((world / "refer/refcoco/instances.json").read_text())
    same_cat = Counter((a["image_id"], a["category_id"]) for a in inst["annotations"])
    assert all(same_cat[k] >= 2 for k in per_image)  # every referred object has a same-kind distractor


def test_refer_polygons_and_boxes_agree_with_the_image(world: Path) -> None:
    mask_api = pytest.importorskip("pycocotools.mask")
    inst = json.loads((world / "refer/refcoco/instances.json").read_text())
    images = {i["id"]: i for i in inst["images"]}
    cats = {c["id"]: c["name"] for c in inst["categories"]}
    for a in inst["annotations"][:40]:
        im = images[a["image_id"]]
        h, w = im["height"], im["width"]
        m = mask_api.decode(mask_api.merge(mask_api.frPyObjects(a["segmentation"], h, w))).astype(bool)
        rows, cols = np.nonzero(m)
        assert [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()] == a["bbox"]
        assert m.sum() == a["area"]
        assert cats[a["category_id"]] in CATEGORY_NAMES


# --- POPE --------------------------------------------------------------------------------------------

def _pope(world: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (world / f"pope/coco_pope_{split}.json").read_text().splitlines()]


def test_pope_format_balance_and_negative_sampling(world: Path) -> None:
    present = {}
    for i in range(TINY.pope):
        scene = make_scene(eval_scene_id(0, "pope", i), SceneSpec(min_categories=3, n_objects=(4, 9)))
        present[f"COCO_val2014_{800000 + 13 * i:012d}.jpg"] = set(scene.categories())
    freq = Counter(c for cats in present.values() for c in cats)
    cooc = Counter((a, b) for cats in present.values() for a in cats for b in cats if a != b)
    order = {c: i for i, c in enumerate(CATEGORY_NAMES)}
    positives = None
    for split in ("random", "popular", "adversarial"):
        rows = _pope(world, split)
        assert [r["question_id"] for r in rows] == list(range(1, len(rows) + 1))
        assert all(set(r) == {"question_id", "image", "text", "label"} for r in rows)
        assert [r["label"] for r in rows] == ["yes", "no"] * (len(rows) // 2)  # POPE alternates
        by_image = defaultdict(list)
        for r in rows:
            obj = re.fullmatch(r"Is there a (.+) in the image\?", r["text"]).group(1)
            assert (obj in present[r["image"]]) == (r["label"] == "yes")
            by_image[r["image"]].append((obj, r["label"]))
        pos = {k: [o for o, lab in v if lab == "yes"] for k, v in by_image.items()}
        positives = positives or pos
        assert pos == positives  # the three splits ask the same positives of the same images
        for img, v in by_image.items():
            negs = [o for o, lab in v if lab == "no"]
            absent = [c for c in CATEGORY_NAMES if c not in present[img]]
            if split == "popular":
                assert negs == sorted(absent, key=lambda c: (-freq[c], order[c]))[:3]
            if split == "adversarial":
                score = {c: sum(cooc[(p, c)] for p in present[img]) for c in absent}
                assert negs == sorted(absent, key=lambda c: (-score[c], order[c]))[:3]


# --- MMBench -----------------------------------------------------------------------------------------

def test_mmbench_tsv_and_circular_rotation(world: Path) -> None:
    rows = list(csv.DictReader(io.StringIO((world / "mmbench/MMBench_DEV_EN.tsv").read_text()), delimiter="\t"))
    assert list(rows[0]) == ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image",
                             "source", "l2-category", "comment", "split"]
    groups = defaultdict(dict)
    for r in rows:
        groups[int(r["index"]) % 1_000_000][int(r["index"]) // 1_000_000] = r
    assert len(groups) == TINY.mmbench
    letters = "ABCD"
    for g, copies in groups.items():
        base = copies[0]
        n = sum(bool(base[ch]) for ch in letters)
        assert sorted(copies) == list(range(n))  # one copy per rotation
        Image.open(io.BytesIO(base64.b64decode(base["image"]))).verify()
        truth = base[base["answer"]]
        for k, row in copies.items():
            if k:
                assert row["image"] == str(g)
            for j in range(n):
                assert row[letters[j]] == base[letters[(j + k) % n]]  # VLMEvalKit's rotation
            assert row[row["answer"]] == truth
    assert {r["l2-category"] for r in rows} <= {
        "coarse_perception", "finegrained_perception (instance-level)", "finegrained_perception (cross-instance)",
        "attribute_reasoning", "relation_reasoning", "logic_reasoning"}


# --- PointQA -----------------------------------------------------------------------------------------

def test_pointqa_records_targets_and_masks(world: Path) -> None:
    mask_api = pytest.importorskip("pycocotools.mask")
    lines = (world / "pointqa/pixmo_points_eval.jsonl").read_text().splitlines()
    kinds = Counter()
    for line in lines:
        r = json.loads(line)
        assert set(r) == {"id", "image", "image_width", "image_height", "label", "question", "points", "masks",
                          "boxes", "count", "kind"}
        kinds[r["kind"]] += 1
        n = r["count"]
        assert len(r["points"]) == len(r["masks"]) == len(r["boxes"]) == n
        assert (n == 0) == (r["kind"] == "zero") or r["kind"] == "count"
        if r["kind"] == "single":
            assert n == 1
        if r["kind"] == "multi":
            assert n >= 2
        h, w = r["image_height"], r["image_width"]
        img = np.asarray(Image.open(world / "pointqa" / r["image"]).convert("RGB"))
        assert img.shape == (h, w, 3)
        for (x, y), m, (x1, y1, x2, y2) in zip(r["points"], r["masks"], r["boxes"], strict=True):
            mask = (mask_api.decode({"size": m["size"], "counts": m["counts"].encode()}) if isinstance(m, dict)
                    else mask_api.decode(mask_api.merge(mask_api.frPyObjects(m, h, w)))).astype(bool)
            assert mask[int(y), int(x)] and x1 <= x <= x2 and y1 <= y <= y2
            rows, cols = np.nonzero(mask)
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x1, y1, x2, y2)
    assert set(kinds) == {"single", "multi", "zero", "count"}
    for name in ("pointqa_local_test.json", "pointqa_twice_test.json"):
        for q in json.loads((world / "pointqa" / name).read_text()):
            assert set(q) == {"question_id", "image", "image_width", "image_height", "question", "point", "answer",
                              "answers"}
            assert q["answer"] in q["answers"]

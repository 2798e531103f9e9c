"""Grounding scorers against the official rules (DESIGN §4) and against pycocotools itself."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from molmo_eval.metrics import grounding as gr

# --- IoU -----------------------------------------------------------------------------------------

IOU_CASES = [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
    ([0, 0, 10, 10], [0, 0, 10, 5], 0.5),  # exactly 0.5: a hit at Acc@0.5
    ([0, 0, 2, 1], [0, 0, 1, 1], 0.5),
    ([0, 0, 10, 10], [0, 0, 10, 4.999], 49.99 / 100),
    ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching
    ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
    ([-10, -10, 10, 10], [0, 0, 10, 10], 100 / 400),  # not clipped to the image
    ([5, 5, 5, 10], [0, 0, 10, 10], 0.0),  # zero width: degenerate
    ([10, 10, 0, 0], [0, 0, 10, 10], 0.0),  # reversed corners: degenerate, not reordered
    ([0, 0, 10, 10], [3, 3, 3, 3], 0.0),  # degenerate target
    ([0.5, 0.5, 2.5, 1.5], [1.5, 0.5, 3.5, 1.5], 1 / 3),  # continuous, no +1 pixel convention
]


@pytest.mark.parametrize("pred,target,expected", IOU_CASES)
def test_box_iou(pred, target, expected):
    assert float(gr.box_iou(pred, target)) == pytest.approx(expected, abs=1e-12)


def test_acc_at_half_counts_exactly_half():
    ious = np.array([0.5, 0.4999999999, 0.5000000001, 1.0, 0.0])
    assert gr.acc_at(ious).tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]


def test_iou_matches_pycocotools_on_random_boxes():
    rng = np.random.default_rng(1)
    a = np.column_stack([rng.uniform(0, 50, 500), rng.uniform(0, 50, 500), rng.uniform(0.1, 40, 500),
                         rng.uniform(0.1, 40, 500)])  # xywh
    b = np.column_stack([rng.uniform(0, 50, 500), rng.uniform(0, 50, 500), rng.uniform(0.1, 40, 500),
                         rng.uniform(0.1, 40, 500)])
    ours = gr.box_iou(np.array([gr.xywh_to_xyxy(x) for x in a]), np.array([gr.xywh_to_xyxy(x) for x in b]))
    theirs = np.array([mask_utils.iou([list(x)], [list(y)], [0])[0, 0] for x, y in zip(a, b, strict=True)])
    assert np.abs(ours - theirs).max() < 1e-9
    assert (theirs > 0).sum() > 50  # the comparison covers overlapping pairs


# --- point in box --------------------------------------------------------------------------------

@pytest.mark.parametrize("x,y,hit", [
    (0, 0, True), (10, 10, True), (10, 5, True), (0, 10, True), (5, 5, True),  # corners and borders count
    (10.000001, 5, False), (-0.000001, 5, False), (5, 10.000001, False), (5, -1, False),
])
def test_point_in_box_is_inclusive(x, y, hit):
    assert bool(gr.points_in_boxes(np.array([x, y], dtype=float), np.array([0, 0, 10, 10], dtype=float))) is hit


# --- point in mask ------------------------------------------------------------------------------

def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": r["size"], "counts": r["counts"].decode("ascii")}


def test_floor_rule_and_image_edges():
    h, w = 5, 6
    m = np.zeros((h, w), np.uint8)
    m[2, 3] = 1  # row 2, column 3
    m[h - 1, w - 1] = 1  # bottom-right pixel
    m[0, 0] = 1
    rle = _rle(m)
    cases = [
        ((3.0, 2.0), True), ((3.999, 2.999), True), ((4.0, 2.5), False), ((2.999, 2.5), False),
        ((3.5, 1.999), False), ((w - 0.001, h - 0.001), True), ((w, h - 0.5), False), ((w - 0.5, h), False),
        ((0.0, 0.0), True), ((-0.001, 0.0), False), ((0.0, -0.5), False), ((float("nan"), 1.0), False),
    ]
    for (x, y), hit in cases:
        assert gr.point_in_mask(x, y, rle) is hit, (x, y)


def test_polygon_union_and_rle_forms_agree_with_pycocotools_annToMask():
    h, w = 40, 50
    polys = [[5, 5, 20, 5, 20, 20, 5, 20], [15, 15, 30, 12, 35, 30, 18, 33], [40, 2, 48, 2, 44, 10]]
    dense = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, h, w)))
    uncompressed = {"size": [h, w], "counts": _uncompressed_counts(dense)}
    compressed = _rle(dense)
    compressed_bytes = {"size": [h, w], "counts": compressed["counts"].encode("ascii")}
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "height": h, "width": w}], "categories": [{"id": 1, "name": "x"}],
                    "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, "segmentation": s, "area": 1,
                                     "bbox": [0, 0, 1, 1], "iscrowd": 0}
                                    for i, s in enumerate([polys, uncompressed, compressed])]}
    coco.createIndex()
    reference = [coco.annToMask(coco.anns[i]) for i in (1, 2, 3)]
    assert all((r == reference[0]).all() for r in reference)
    assert reference[0].sum() > 300  # overlapping polygons: a real union
    ys, xs = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(0)
    px = np.concatenate([xs.ravel() + rng.random(xs.size), rng.uniform(-3, w + 3, 2000)])
    py = np.concatenate([ys.ravel() + rng.random(ys.size), rng.uniform(-3, h + 3, 2000)])
    row, col = np.floor(py).astype(int), np.floor(px).astype(int)
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    expected = np.zeros(px.size, bool)
    expected[inside] = reference[0][row[inside], col[inside]] > 0
    for segm in (polys, uncompressed, compressed, compressed_bytes):
        rle = gr.segmentation_rle(segm, h, w)
        assert (gr.ann_to_mask(segm, h, w) == reference[0]).all()
        got = gr.points_in_masks(px, py, np.zeros(px.size, int), [rle])
        assert (got == expected).all()


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    flat = mask.ravel(order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            cur, run = v, 0
        run += 1
    counts.append(run)
    return counts


def test_many_masks_vectorized_equals_one_by_one():
    rng = np.random.default_rng(3)
    rles, dense = [], []
    for _ in range(30):
        h, w = rng.integers(1, 25, 2)
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        dense.append(m)
        rles.append(_rle(m))
    which = rng.integers(0, 30, 5000)
    px, py = rng.uniform(-2, 27, 5000), rng.uniform(-2, 27, 5000)
    got = gr.points_in_masks(px, py, which, rles)
    for i in range(5000):
        m = dense[which[i]]
        r, c = int(np.floor(py[i])), int(np.floor(px[i]))
        exp = 0 <= r < m.shape[0] and 0 <= c < m.shape[1] and m[r, c] > 0
        assert got[i] == exp


def test_malformed_rle_is_refused():
    with pytest.raises(ValueError):
        gr.MaskSet.build([{"size": [3, 3], "counts": [2, 3]}])  # runs sum to 5, not 9


# --- Hungarian matching ----------------------------------------------------------------------------

def _boxes_around(points, r=1.0):
    return [[x - r, y - r, x + r, y + r] for x, y in points]


TARGETS = [(0.0, 0.0), (10.0, 0.0)]


@pytest.mark.parametrize("pred,hits,precision,recall,f1", [
    ([(1, 0), (9, 0), (50, 50)], 2, 2 / 3, 1.0, 0.8),  # more predictions than targets
    ([(1, 0)], 1, 1.0, 0.5, 2 / 3),  # fewer predictions
    ([(0.5, 0.5), (10.5, -0.5)], 2, 1.0, 1.0, 1.0),
    ([(5, 0)], 0, 0.0, 0.0, 0.0),  # matched but outside every box
    ([], 0, 0.0, 0.0, 0.0),  # nothing predicted, targets exist
    ([(1, 0), (1, 0), (1, 0)], 1, 1 / 3, 0.5, 0.4),  # one-to-one: duplicates cannot all hit
])
def test_match_points_precision_recall(pred, hits, precision, recall, f1):
    m = gr.match_points(np.array(pred, float), np.array(TARGETS), gr.region_hit([None, None], _boxes_around(TARGETS)))
    assert (m.hits, m.precision, m.recall, m.f1) == (hits, pytest.approx(precision), pytest.approx(recall),
                                                     pytest.approx(f1))


def test_zero_targets_rule():
    empty = gr.match_points(np.zeros((0, 2)), np.zeros((0, 2)), gr.region_hit([], []))
    assert (empty.precision, empty.recall, empty.f1) == (1.0, 1.0, 1.0)
    some = gr.match_points(np.array([[1.0, 1.0]]), np.zeros((0, 2)), gr.region_hit([], []))
    assert (some.precision, some.recall, some.f1) == (0.0, 0.0, 0.0)


def test_hungarian_is_optimal_not_greedy():
    # greedy nearest-first would give P1 -> T2 (0.9) and P2 -> T1 (3.0): total 3.9, hits 0
    # the optimal assignment is P1 -> T1 (1.1) and P2 -> T2 (1.0): total 2.1, hits 2
    targets = np.array([[0.0, 0.0], [2.0, 0.0]])
    preds = np.array([[1.1, 0.0], [3.0, 0.0]])
    rows, cols = gr.hungarian(preds, targets)
    assert dict(zip(rows.tolist(), cols.tolist(), strict=True)) == {0: 0, 1: 1}
    boxes = [[-0.5, -0.5, 1.2, 0.5], [1.5, -0.5, 3.5, 0.5]]
    assert gr.match_points(preds, targets, gr.region_hit([None, None], boxes)).hits == 2


def test_mask_preferred_over_box():
    m = np.zeros((20, 20), np.uint8)
    m[0:5, 0:5] = 1
    hit = gr.region_hit([_rle(m)], [[0, 0, 19, 19]])
    # (10, 10) is inside the box but outside the mask: a miss because the mask decides
    assert gr.match_points(np.array([[10.0, 10.0]]), np.array([[2.0, 2.0]]), hit).hits == 0
    assert gr.match_points(np.array([[4.5, 4.5]]), np.array([[2.0, 2.0]]), hit).hits == 1

"""Grounding scorers: box IoU, point-in-box, point-in-mask, Hungarian point matching (DESIGN §4).

Sits in `Task.score` of refcoco and pointqa. All coordinates are pixels of the original image.

- IoU is continuous; predicted boxes are neither clipped nor reordered; a box with x2 <= x1 or y2 <= y1
  is degenerate and has IoU 0 with anything. Acc@0.5 counts IoU >= 0.5.
- point-in-box is inclusive on all four borders.
- point-in-mask follows pycocotools ``annToMask`` (union of an annotation's polygons, or its RLE); the
  point's pixel is ``(row=floor(y), col=floor(x))`` and a pixel outside ``[0, W) x [0, H)`` is a miss.
  Masks are kept as COCO run-length encodings and looked up without decoding them: a lookup is a
  binary search in the cumulative run lengths, vectorized over any number of points and masks.
- multi-point answers are matched one-to-one to targets by the Hungarian algorithm on Euclidean
  distance; a matched pair is a hit when the point is in the target's mask (else its box).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

BoxLike = Sequence[float]
Segmentation = Any  # COCO polygons [[x1, y1, ...], ...], or RLE {"size": [H, W], "counts": str | list}


# --- boxes ----------------------------------------------------------------------------------

def box_iou(pred: np.ndarray | BoxLike, target: np.ndarray | BoxLike) -> np.ndarray:
    """IoU of boxes ``[..., 4]`` as ``(x1, y1, x2, y2)``, broadcast over leading axes."""
    a, b = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    wa, ha = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    wb, hb = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    ok = (wa > 0) & (ha > 0) & (wb > 0) & (hb > 0)
    union = np.where(ok, wa * ha + wb * hb - inter, 1.0)
    return np.where(ok, inter / union, 0.0)


def acc_at(iou: np.ndarray | float, threshold: float = 0.5) -> np.ndarray:
    """1.0 where IoU >= threshold (Acc@0.5 counts IoU exactly 0.5 as a hit)."""
    return (np.asarray(iou) >= threshold).astype(np.float64)


def points_in_boxes(xy: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``xy[..., 2]`` inside ``boxes[..., 4]`` (broadcast), inclusive on all four borders."""
    p, b = np.asarray(xy, dtype=np.float64), np.asarray(boxes, dtype=np.float64)
    return ((b[..., 0] <= p[..., 0]) & (p[..., 0] <= b[..., 2])
            & (b[..., 1] <= p[..., 1]) & (p[..., 1] <= b[..., 3]))


def xywh_to_xyxy(b: Sequence[float]) -> tuple[float, float, float, float]:
    """COCO ``[x, y, w, h]`` -> ``(x1, y1, x2, y2)``."""
    x, y, w, h = (float(v) for v in b)
    return (x, y, x + w, y + h)


# --- masks ----------------------------------------------------------------------------------

def segmentation_rle(segm: Segmentation, height: int, width: int) -> dict[str, Any]:
    """A COCO annotation's segmentation as one compressed RLE ``{"size": [H, W], "counts": str}``,
    exactly as pycocotools ``annToRLE`` builds it (polygons merged into their union)."""
    from pycocotools import mask as mask_utils

    if isinstance(segm, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm, Mapping) and isinstance(segm.get("counts"), list):
        rle = mask_utils.frPyObjects(dict(segm), *segm["size"])
    elif isinstance(segm, Mapping) and isinstance(segm.get("counts"), (str, bytes)):
        rle = dict(segm)
    else:
        raise ValueError(f"not a COCO segmentation: {type(segm).__name__}")
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def checked_rle(segm: Segmentation, height: int, width: int) -> dict[str, Any]:
    """`segmentation_rle` of an annotation, checked as pycocotools would need it to be: its size is
    the image's ``[H, W]`` and its runs are non-negative and cover exactly H*W pixels (ValueError
    otherwise; loaders report it as bad data)."""
    rle = segmentation_rle(segm, height, width)
    if rle["size"] != [height, width]:
        raise ValueError(f"mask size {rle['size']} is not the image's [H, W] = [{height}, {width}]")
    runs = rle_runs(rle)
    if (runs < 0).any() or int(runs.sum()) != height * width:
        raise ValueError(f"RLE run lengths sum to {int(runs.sum())}, not to H*W = {height * width}")
    return rle


def ann_to_mask(segm: Segmentation, height: int, width: int) -> np.ndarray:
    """The decoded binary mask ``(H, W)`` uint8, as pycocotools ``annToMask`` returns it."""
    from pycocotools import mask as mask_utils

    rle = segmentation_rle(segm, height, width)
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})


@lru_cache(maxsize=65536)
def _runs_from_string(counts: str) -> np.ndarray:
    """Run lengths of a compressed COCO RLE string (the LEB128-like code of pycocotools ``rleFrString``:
    5 bits per character offset by 48, bit 0x20 = more characters follow, bit 0x10 of the last one =
    negative; from the fourth run on each value is a delta to the run two places earlier)."""
    c = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    last = (c & 0x20) == 0  # this character ends a number
    if not last[-1]:
        raise ValueError("truncated RLE counts string")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    number = np.cumsum(np.concatenate(([0], last[:-1].astype(np.int64))))
    shift = 5 * (np.arange(c.size) - starts[number])
    x = np.add.reduceat((c & 0x1F) << shift, starts)
    nbits = 5 * (ends - starts + 1)
    x = np.where((c[ends] & 0x10) != 0, x - (np.int64(1) << nbits), x)
    out = x.copy()
    out[1::2] = np.cumsum(x[1::2])  # run m (m > 2) adds run m - 2: two interleaved running sums
    out[2::2] = np.cumsum(x[2::2])
    return out


def rle_runs(rle: Mapping[str, Any]) -> np.ndarray:
    """Run lengths (background first, column-major) of a compressed or uncompressed RLE."""
    counts = rle["counts"]
    if isinstance(counts, list):
        return np.asarray(counts, dtype=np.int64)
    return _runs_from_string(counts.decode("ascii") if isinstance(counts, bytes) else counts)


@dataclass(frozen=True)
class MaskSet:
    """Several RLE masks prepared for vectorized lookups: their cumulative run ends laid end to end."""

    ends: np.ndarray  # (R,) int64: cumulative run ends of all masks, each mask offset by `base`
    first_run: np.ndarray  # (M,) index in `ends` of each mask's first run
    base: np.ndarray  # (M,) pixel offset of each mask
    height: np.ndarray  # (M,)
    width: np.ndarray  # (M,)

    @classmethod
    def build(cls, rles: Sequence[Mapping[str, Any]]) -> MaskSet:
        runs = [rle_runs(r) for r in rles]
        h = np.array([int(r["size"][0]) for r in rles], dtype=np.int64)
        w = np.array([int(r["size"][1]) for r in rles], dtype=np.int64)
        area = h * w
        for r, a in zip(runs, area, strict=True):
            if int(r.sum()) != int(a) or (r < 0).any():
                raise ValueError(f"RLE run lengths sum to {int(r.sum())}, not to its size H*W = {int(a)}")
        base = np.concatenate(([0], np.cumsum(area)[:-1])) if len(rles) else np.zeros(0, np.int64)
        ends = [b + np.cumsum(r) for b, r in zip(base, runs, strict=True)]
        first = np.concatenate(([0], np.cumsum([len(r) for r in runs])[:-1])) if runs else np.zeros(0, np.int64)
        cat = np.concatenate(ends) if ends else np.zeros(0, np.int64)
        return cls(cat.astype(np.int64), first.astype(np.int64), base.astype(np.int64), h, w)

    def contains(self, x: np.ndarray, y: np.ndarray, which: np.ndarray) -> np.ndarray:
        """Is point ``(x[i], y[i])`` in mask ``which[i]``? Pixel ``(floor(y), floor(x))``; outside the
        mask's ``[0, W) x [0, H)`` is a miss."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        which = np.asarray(which, dtype=np.int64)
        h, w = self.height[which], self.width[which]
        with np.errstate(invalid="ignore"):
            col, row = np.floor(x), np.floor(y)
            inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        lin = (np.where(inside, col, 0).astype(np.int64) * h + np.where(inside, row, 0).astype(np.int64)
               + self.base[which])
        run = np.searchsorted(self.ends, lin, side="right") - self.first_run[which]
        return inside & (run % 2 == 1)


def points_in_masks(x: np.ndarray, y: np.ndarray, which: np.ndarray,
                    rles: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Vectorized point-in-mask for points ``(x[i], y[i])`` against masks ``rles[which[i]]``."""
    return MaskSet.build(rles).contains(x, y, which)


def point_in_mask(x: float, y: float, rle: Mapping[str, Any]) -> bool:
    return bool(points_in_masks(np.array([x]), np.array([y]), np.array([0]), [rle])[0])


# --- many points against many targets --------------------------------------------------------

@dataclass(frozen=True)
class PointMatch:
    """Hungarian-matched pointing result of one example."""

    n_pred: int
    n_target: int
    hits: int

    @property
    def precision(self) -> float:
        if self.n_target == 0:
            return float(self.n_pred == 0)
        return self.hits / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        if self.n_target == 0:
            return float(self.n_pred == 0)
        return self.hits / self.n_target

    @property
    def f1(self) -> float:
        if self.n_target == 0:
            return float(self.n_pred == 0)
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else 0.0


def hungarian(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching of predicted to target points minimizing total Euclidean distance
    (``scipy.optimize.linear_sum_assignment``); returns (pred indices, target indices)."""
    p, t = np.asarray(pred, dtype=np.float64).reshape(-1, 2), np.asarray(target, dtype=np.float64).reshape(-1, 2)
    if len(p) == 0 or len(t) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    cost = np.sqrt(((p[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    rows, cols = linear_sum_assignment()(cost)
    return rows.astype(np.int64), cols.astype(np.int64)


@lru_cache(maxsize=1)
def linear_sum_assignment() -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """scipy's ``linear_sum_assignment``, the function itself. Importing ``scipy.optimize`` runs the
    whole package (linprog, minimize, ...: about a second, more than a run answered from the response
    cache spends on everything else), so while it is not imported yet, the compiled ``_lsap`` module
    that defines the function is loaded alone, under its own name; any surprise (another scipy layout)
    falls back to the public import."""
    import sys

    if "scipy.optimize" not in sys.modules:
        try:
            return _load_lsap()
        except Exception:
            pass
    from scipy.optimize import linear_sum_assignment as lsa

    return lsa  # type: ignore[no-any-return]


def _load_lsap() -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    import importlib.machinery
    import importlib.util
    import os
    import sys

    name = "scipy.optimize._lsap"
    module = sys.modules.get(name)
    if module is None:
        import scipy

        folder = os.path.join(os.path.dirname(scipy.__file__), "optimize")
        found = [f for f in os.listdir(folder) if f.startswith("_lsap.")
                 and f.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]
        loader = importlib.machinery.ExtensionFileLoader(name, os.path.join(folder, found[0]))
        spec = importlib.util.spec_from_loader(name, loader)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        loader.exec_module(module)
        sys.modules[name] = module  # a later `import scipy.optimize` finds it, rather than loading it twice
    fn = module.linear_sum_assignment
    if not callable(fn):
        raise TypeError("scipy.optimize._lsap.linear_sum_assignment is not a function")
    return fn  # type: ignore[no-any-return]


def match_points(pred: np.ndarray, target: np.ndarray,
                 hit: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> PointMatch:
    """Match ``pred`` (P, 2) to ``target`` (T, 2) and count hits; ``hit(pred_xy, target_idx)`` says,
    for each matched pair, whether the predicted point lies in that target's region."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(target, dtype=np.float64).reshape(-1, 2)
    rows, cols = hungarian(p, t)
    hits = int(np.count_nonzero(hit(p[rows], cols))) if len(rows) else 0
    return PointMatch(len(p), len(t), hits)


def region_hit(masks: Sequence[Mapping[str, Any] | None], boxes: Sequence[BoxLike | None]
               ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The hit test of `match_points` for targets with a mask (preferred) or else a box each."""

    def hit(xy: np.ndarray, idx: np.ndarray) -> np.ndarray:
        out = np.zeros(len(idx), dtype=bool)
        with_mask = np.array([masks[i] is not None if i < len(masks) else False for i in idx], dtype=bool)
        if with_mask.any():
            sel = idx[with_mask]
            uniq, which = np.unique(sel, return_inverse=True)
            out[with_mask] = points_in_masks(xy[with_mask, 0], xy[with_mask, 1], which,
                                             [masks[i] for i in uniq])  # type: ignore[misc]
        rest = ~with_mask
        if rest.any():
            bx = np.array([boxes[i] for i in idx[rest]], dtype=np.float64)
            out[rest] = points_in_boxes(xy[rest], bx)
        return out

    return hit

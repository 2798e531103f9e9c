"""Exact, portable rasterization of the scene primitives into boolean masks.

A pixel (row r, column c) belongs to a shape when its centre (c + 0.5, r + 0.5) does. Geometry is
snapped to 1/64 pixel first, so the arithmetic on pixel centres is exact in float64 (polygons) or
correctly rounded (ellipses): the masks, hence the images and every box and mask written to the
benchmark files, are the same on every machine. No anti-aliasing, no transcendental numpy calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

QUANTUM = 64  # geometry is snapped to 1/QUANTUM pixel


def snap(v: float) -> float:
    return round(v * QUANTUM) / QUANTUM


def _window(h: int, w: int, x0: float, y0: float, x1: float, y1: float) -> tuple[int, int, int, int] | None:
    """Pixel rows/cols whose centres may lie in [x0, x1] x [y0, y1], clipped to the canvas."""
    c0, c1 = max(0, int(np.floor(x0 - 0.5))), min(w, int(np.ceil(x1 + 0.5)))
    r0, r1 = max(0, int(np.floor(y0 - 0.5))), min(h, int(np.ceil(y1 + 0.5)))
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def _centres(r0: int, r1: int, c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:
    ys = (np.arange(r0, r1, dtype=np.float64) + 0.5)[:, None]
    xs = (np.arange(c0, c1, dtype=np.float64) + 0.5)[None, :]
    return xs, ys


def polygon(h: int, w: int, points: Sequence[tuple[float, float]]) -> np.ndarray:
    """Even-odd fill of a closed polygon given as (x, y) vertices in pixels."""
    pts = [(snap(x), snap(y)) for x, y in points]
    mask = np.zeros((h, w), dtype=bool)
    xs_all = [p[0] for p in pts]
    ys_all = [p[1] for p in pts]
    win = _window(h, w, min(xs_all), min(ys_all), max(xs_all), max(ys_all))
    if win is None:
        return mask
    r0, r1, c0, c1 = win
    xs, ys = _centres(r0, r1, c0, c1)
    inside = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    n = len(pts)
    for i in range(n):
        xa, ya = pts[i]
        xb, yb = pts[(i + 1) % n]
        if ya == yb:
            continue  # a horizontal edge never crosses a row of centres
        crosses = (ya > ys) != (yb > ys)  # (rows, 1)
        x_at = xa + (ys - ya) * ((xb - xa) / (yb - ya))
        inside ^= crosses & (xs < x_at)
    mask[r0:r1, c0:c1] = inside
    return mask


def rect(h: int, w: int, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return polygon(h, w, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def ellipse(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    cx, cy, rx, ry = snap(cx), snap(cy), snap(rx), snap(ry)
    mask = np.zeros((h, w), dtype=bool)
    win = _window(h, w, cx - rx, cy - ry, cx + rx, cy + ry)
    if win is None or rx <= 0 or ry <= 0:
        return mask
    r0, r1, c0, c1 = win
    xs, ys = _centres(r0, r1, c0, c1)
    dx = (xs - cx) / rx
    dy = (ys - cy) / ry
    mask[r0:r1, c0:c1] = dx * dx + dy * dy <= 1.0
    return mask


def capsule(h: int, w: int, xa: float, ya: float, xb: float, yb: float, radius: float) -> np.ndarray:
    """A thick line segment with round ends: points within ``radius`` of the segment."""
    xa, ya, xb, yb, radius = snap(xa), snap(ya), snap(xb), snap(yb), snap(radius)
    mask = np.zeros((h, w), dtype=bool)
    win = _window(h, w, min(xa, xb) - radius, min(ya, yb) - radius, max(xa, xb) + radius,
                  max(ya, yb) + radius)
    if win is None:
        return mask
    r0, r1, c0, c1 = win
    xs, ys = _centres(r0, r1, c0, c1)
    dx, dy = xb - xa, yb - ya
    length2 = dx * dx + dy * dy
    if length2 == 0:
        t = np.zeros_like(xs + ys)
    else:
        t = np.clip(((xs - xa) * dx + (ys - ya) * dy) / length2, 0.0, 1.0)
    px = xs - (xa + t * dx)
    py = ys - (ya + t * dy)
    mask[r0:r1, c0:c1] = px * px + py * py <= radius * radius
    return mask


def erode(mask: np.ndarray) -> np.ndarray:
    """4-neighbour erosion; pixels on the canvas border count as having outside neighbours."""
    out = mask.copy()
    out[1:, :] &= mask[:-1, :]
    out[:-1, :] &= mask[1:, :]
    out[:, 1:] &= mask[:, :-1]
    out[:, :-1] &= mask[:, 1:]
    out[0, :] = out[-1, :] = False
    out[:, 0] = out[:, -1] = False
    return out


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """A pixel centre deep inside the mask: the pixel whose distance to the mask's edge along its
    row and column (the smallest of the four) is largest; ties go to the one nearest the centroid
    of the tied pixels, then to the lowest row and column. Used as the ground-truth point."""
    assert mask.any()
    r0, r1, c0, c1 = bbox(mask)
    m = np.zeros((r1 - r0 + 2, c1 - c0 + 2), dtype=bool)  # a margin of background all round
    m[1:-1, 1:-1] = mask[r0:r1, c0:c1]
    h, w = m.shape
    cols = np.broadcast_to(np.arange(w), (h, w))
    rows = np.broadcast_to(np.arange(h)[:, None], (h, w))
    left = cols - np.maximum.accumulate(np.where(m, 0, cols), axis=1)
    right = np.flip(np.minimum.accumulate(np.flip(np.where(m, w, cols), axis=1), axis=1), axis=1) - cols
    up = rows - np.maximum.accumulate(np.where(m, 0, rows), axis=0)
    down = np.flip(np.minimum.accumulate(np.flip(np.where(m, h, rows), axis=0), axis=0), axis=0) - rows
    depth = np.minimum(np.minimum(left, right), np.minimum(up, down)) * m
    rr, cc = np.nonzero(depth == depth.max())
    cy, cx = rr.mean(), cc.mean()
    i = int(np.lexsort((cc, rr, (rr - cy) ** 2 + (cc - cx) ** 2))[0])
    return float(cc[i] + c0 - 1) + 0.5, float(rr[i] + r0 - 1) + 0.5


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the mask's pixels, ends exclusive."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1

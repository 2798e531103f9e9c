"""File-level helpers shared by the benchmark writers: JPEG images, COCO masks, deterministic JSON.

- `jpeg_bytes`: real JPEG (quality 95, 4:4:4 chroma so small words stay crisp). The bytes depend on
  the installed libjpeg; the pixels before encoding do not (`pixel_digest`).
- `rle_encode`: COCO's compressed RLE (column-major run lengths, the 6-bit character code of
  pycocotools' ``rleToString``), written here so the world needs no pycocotools.
- `mask_polygons`: exact polygons along pixel borders, one per 4-connected outer boundary; they
  rasterize back to the same pixels under COCO's polygon rule.
- `dump_json` / `write_text`: stable key order and separators, so identical data means identical bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

JPEG_QUALITY = 95


def jpeg_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def pixel_digest_update(h: Any, image: np.ndarray) -> None:
    """Feed an image's raw pixels (and shape) into a running hash."""
    h.update(f"{image.shape}".encode())
    h.update(np.ascontiguousarray(image).tobytes())


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def dump_json(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=False, indent=indent, separators=(",", ":")
                      if indent is None else (",", ": "))


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, dump_json(obj).encode("utf-8"))


def write_jsonl(path: Path, rows: list[Any]) -> None:
    write_bytes(path, "".join(dump_json(r) + "\n" for r in rows).encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- COCO RLE -------------------------------------------------------------------------------------

def rle_counts(mask: np.ndarray) -> list[int]:
    """Run lengths in column-major order, starting with a (possibly empty) run of zeros."""
    flat = np.asfortranarray(mask).reshape(-1, order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        runs = [0] + runs
    return [int(r) for r in runs]


def rle_string(counts: list[int]) -> str:
    """Mirrors pycocotools' rleToString: deltas against the run two back, 5 bits per character."""
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    h, w = mask.shape
    return {"size": [int(h), int(w)], "counts": rle_string(rle_counts(mask))}


# --- polygons along pixel borders ----------------------------------------------------------------------

_STEP = {(1, 0): 0, (0, 1): 1, (-1, 0): 2, (0, -1): 3}  # direction -> index (right, down, left, up)


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """The mask as COCO polygons ``[x1, y1, x2, y2, ...]`` on pixel corners, exact under COCO's
    polygon rasterization (pycocotools ``frPyObjects``).

    Each boundary edge is directed with the object on its right-hand side, so outer boundaries run
    clockwise on screen and holes counter-clockwise; at a corner shared by two diagonal pixels the
    trace turns right, which keeps diagonal neighbours apart. COCO polygons have no holes, so each
    hole is joined to the boundary on its left by a zero-width horizontal cut (a keyhole)."""
    m = np.pad(mask.astype(bool), 1)
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def add(r: np.ndarray, c: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> None:
        for rr, cc in zip(r.tolist(), c.tolist()):
            edges.setdefault((cc + a[0], rr + a[1]), []).append((cc + b[0], rr + b[1]))

    inner = m[1:-1, 1:-1]
    r, c = np.nonzero(inner & ~m[:-2, 1:-1])
    add(r, c, (0, 0), (1, 0))  # top side, going right
    r, c = np.nonzero(inner & ~m[1:-1, 2:])
    add(r, c, (1, 0), (1, 1))  # right side, going down
    r, c = np.nonzero(inner & ~m[2:, 1:-1])
    add(r, c, (1, 1), (0, 1))  # bottom side, going left
    r, c = np.nonzero(inner & ~m[1:-1, :-2])
    add(r, c, (0, 1), (0, 0))  # left side, going up
    outers: list[list[tuple[int, int]]] = []
    holes: list[list[tuple[int, int]]] = []
    for start in sorted(edges):
        while edges.get(start):
            loop = _trace(edges, start)
            (outers if _signed_area(loop) > 0 else holes).append(loop)
    for hole in sorted(holes, key=min):
        _bridge(outers, hole)
    return [[float(v) for p in _simplify(loop) for v in p] for loop in outers]


def _bridge(outers: list[list[tuple[int, int]]], hole: list[tuple[int, int]]) -> None:
    """Splice ``hole`` into the loop whose boundary is nearest to its left along the row line of
    the hole's leftmost-topmost corner (every boundary point is a vertex: loops are unit steps)."""
    v = min(hole)
    k = hole.index(v)
    best: tuple[int, int, int] | None = None  # (x, loop, position)
    for li, loop in enumerate(outers):
        for pi, p in enumerate(loop):
            if p[1] == v[1] and p[0] < v[0] and (best is None or p[0] > best[0]):
                best = (p[0], li, pi)
    assert best is not None, "a hole must lie inside an outer boundary"
    x, li, pi = best
    loop = outers[li]
    cut = [(xx, v[1]) for xx in range(x + 1, v[0])]
    ring = hole[k:] + hole[:k] + [v]
    outers[li] = loop[:pi + 1] + cut + ring + cut[::-1] + loop[pi:]


def _trace(edges: dict[tuple[int, int], list[tuple[int, int]]], start: tuple[int, int]) -> list[tuple[int, int]]:
    loop = [start]
    prev_dir: tuple[int, int] | None = None
    cur = start
    while True:
        outs = edges[cur]
        if len(outs) == 1 or prev_dir is None:
            nxt = outs.pop(0)
        else:  # a pinch corner: turn right relative to the way we came
            want = (-prev_dir[1], prev_dir[0])
            k = next((i for i, o in enumerate(outs) if (o[0] - cur[0], o[1] - cur[1]) == want), 0)
            nxt = outs.pop(k)
        if not outs:
            del edges[cur]
        prev_dir = (nxt[0] - cur[0], nxt[1] - cur[1])
        cur = nxt
        if cur == start:
            return loop
        loop.append(cur)


def _signed_area(loop: list[tuple[int, int]]) -> int:
    """Twice the shoelace area; positive for clockwise loops on screen (y down)."""
    s = 0
    n = len(loop)
    for i in range(n):
        x0, y0 = loop[i]
        x1, y1 = loop[(i + 1) % n]
        s += x0 * y1 - x1 * y0
    return s


def _simplify(loop: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop vertices in the middle of straight runs (never a reversal of direction)."""
    n = len(loop)
    out = []
    for i in range(n):
        a, b, c = loop[i - 1], loop[i], loop[(i + 1) % n]
        d1 = (b[0] - a[0], b[1] - a[1])
        d2 = (c[0] - b[0], c[1] - b[1])
        straight = d1[0] * d2[1] == d1[1] * d2[0] and d1[0] * d2[0] + d1[1] * d2[1] > 0
        if not straight:
            out.append(b)
    return out

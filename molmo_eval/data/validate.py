"""Typed fields of benchmark records: the one validation layer the task loaders read through.

`molmo_eval.data.files.field` gets a field of the right JSON type; the readers here add what a number
must be to mean what a loader uses it for. Each raises a `DataError` naming the file, the record and
the field, with what was expected, so bad data stops the run before any model call (exit 2) instead of
crashing it later (a ZeroDivisionError while prompting) or, worse, giving a wrong number (a box of
width Infinity that every point hits):

- numbers are finite (JSON files may hold ``NaN`` and ``Infinity``, Python reads them) and never
  booleans;
- image sizes are positive integers (an integral float such as ``640.0`` is accepted), no larger
  than an image the harness would load;
- boxes are four finite numbers with non-negative width and height;
- points are finite pairs;
- integers written as text (MMBench's ``index`` and ``g_index``) are bounded numerals;
- ids are unique where a benchmark promises they are (`unique`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import DataError
from molmo_eval.data.files import field
from molmo_eval.data.images import MAX_IMAGE_PIXELS

MAX_DIMENSION = 1 << 20  # pixels along one side; larger is a corrupt record, not an image
_INT_TEXT = re.compile(r"\s*[+-]?\d{1,18}(?:\.0*)?\s*")


def is_number(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def number(rec: Any, name: str, *, path: Path, index: object, minimum: float | None = None,
           expected: str | None = None) -> float:
    """``rec[name]`` as a finite number (at least ``minimum``)."""
    v = field(rec, name, path=path, index=index)
    want = expected or ("a finite number" + ("" if minimum is None else f" >= {minimum:g}"))
    if not is_number(v) or (minimum is not None and v < minimum):
        raise DataError(f"is {_shown(v)}", path=path, record=index, field=name, expected=want)
    return float(v)


def dimension(rec: Any, name: str, *, path: Path, index: object) -> int:
    """``rec[name]`` as an image side: a positive integer (``640.0`` reads as 640)."""
    v = field(rec, name, path=path, index=index)
    if not is_number(v) or v != int(v) or not 1 <= v <= MAX_DIMENSION:
        raise DataError(f"is {_shown(v)}", path=path, record=index, field=name,
                        expected=f"a positive integer number of pixels (at most {MAX_DIMENSION})")
    return int(v)


def image_size(rec: Any, *, path: Path, index: object, width: str = "width",
               height: str = "height") -> tuple[int, int]:
    """(W, H) from two fields of ``rec``: positive integers, at most `MAX_IMAGE_PIXELS` together (no
    image the harness would load is larger)."""
    w, h = dimension(rec, width, path=path, index=index), dimension(rec, height, path=path, index=index)
    if w * h > MAX_IMAGE_PIXELS:
        raise DataError(f"declares a {w}x{h} image", path=path, record=index, field=width,
                        expected=f"at most {MAX_IMAGE_PIXELS} pixels")
    return w, h


def point_in_image(v: Any, size: tuple[int, int], *, path: Path, index: object, name: str) -> list[float]:
    """A point ``[x, y]`` of finite pixels inside the image (borders included)."""
    p = coords(v, 2)
    if p is None or not (0 <= p[0] <= size[0] and 0 <= p[1] <= size[1]):
        raise DataError(f"point {_shown(v)}", path=path, record=index, field=name,
                        expected=f"[x, y] pixels inside the {size[0]}x{size[1]} image")
    return p


def coords(v: Any, n: int) -> list[float] | None:
    """``v`` as a list of ``n`` finite numbers, or None."""
    if isinstance(v, (list, tuple)) and len(v) == n and all(is_number(x) for x in v):
        return [float(x) for x in v]
    return None


def box_xywh(v: Any, *, path: Path, index: object, name: str = "bbox") -> list[float]:
    """A COCO box ``[x, y, w, h]``: finite numbers, width and height >= 0."""
    box = coords(v, 4)
    if box is None or box[2] < 0 or box[3] < 0:
        raise DataError(f"box {_shown(v)}", path=path, record=index, field=name,
                        expected="[x, y, w, h]: four finite numbers, w >= 0 and h >= 0")
    return box


def box_xyxy(v: Any, *, path: Path, index: object, name: str = "box") -> list[float]:
    """A box ``[x1, y1, x2, y2]``: finite numbers, x2 >= x1 and y2 >= y1."""
    box = coords(v, 4)
    if box is None or box[2] < box[0] or box[3] < box[1]:
        raise DataError(f"box {_shown(v)}", path=path, record=index, field=name,
                        expected="[x1, y1, x2, y2]: four finite numbers, x2 >= x1 and y2 >= y1")
    return box


def int_text(v: Any, *, path: Path, index: object, name: str) -> int:
    """An integer written as text or a number in a table cell (``"12"``, ``12``, ``"12.0"``)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    if isinstance(v, str) and _INT_TEXT.fullmatch(v):
        return int(v.strip().split(".")[0])
    raise DataError(f"{_shown(v)} is not an integer", path=path, record=index, field=name,
                    expected="an integer")


def unique(ids: Iterable[tuple[object, object]], *, path: Path, name: str) -> None:
    """Refuse a repeated id; ``ids`` yields (id, where it is) pairs."""
    seen: dict[object, object] = {}
    for key, where in ids:
        if key in seen:
            raise DataError(f"duplicate {name} {key!r} (first at {seen[key]})", path=path, record=where,
                            field=name, expected="each id once")
        seen[key] = where


def _shown(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["box_xywh", "box_xyxy", "coords", "dimension", "image_size", "int_text", "is_number", "number",
           "point_in_image", "unique"]

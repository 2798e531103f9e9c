"""Points and boxes in model text -> pixels (DESIGN §4). Sits between `Model.generate` and `Task.score`.

One module reads every point syntax a model may write:

- Molmo XML: ``<point x="45.5" y="67.0" alt="..">..</point>`` and
  ``<points x1=".." y1=".." x2=".." y2=".." alt="..">..</points>``;
- the reference model's bin tokens: ``<point> <x_45> <y_67>`` (several ``<point>`` groups for several points);
- plain text ``(x, y)`` pairs and JSON lists ``[x, y]`` / ``[[x, y], ...]`` (also inside JSON objects such
  as Qwen's ``{"point_2d": [x, y]}``).

and every box syntax: ``<box x1=".." y1=".." x2=".." y2="..">`` (Molmo-style attributes), bin tokens
``<x_a> <y_b> <x_c> <y_d>``, ``[x1, y1, x2, y2]`` text/JSON (Qwen's ``{"bbox_2d": [...]}``) and
Qwen2-VL's ``(x1,y1),(x2,y2)``.

The *syntax* is read from the text; the numeric *scale* always comes from the model's declared
`CoordSpace` (percent, 0-1, 0-1000, pixels, bins decoded to bin centres), never from the numbers.
Readers return raw numbers; `parse_points` / `parse_box` convert them with ``space.to_pixels``.
Malformed markup (a ``<point`` tag without numeric x/y, an x bin token without its y) is reported as
``None`` so the caller can mark the answer unparseable; text with no coordinates at all is an empty
tuple (the model pointed at nothing).

A model's output is untrusted: a coordinate is read only when it is a finite number of at most
`MAX_NUMBER_CHARS` characters whose magnitude is at most `MAX_COORD` in the model's space (a point
a million pixels, percent or bins away is not an answer, and ``1e999`` would break the Hungarian
matching); anything else makes the answer malformed (``None``), never an exception. Structured
points and boxes a backend returns pass the same check.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from molmo_eval.core.types import Box, CoordSpace, Generation, Point

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_TAG = re.compile(r"<(points?|box)\b([^<>]*)>", re.IGNORECASE)
_ATTR = re.compile(r"([A-Za-z_][\w-]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))")
_BIN = re.compile(r"<([xy])_(\d+)>", re.IGNORECASE)
_PAIR = re.compile(rf"[\(\[]\s*({_NUM})\s*,\s*({_NUM})\s*[\)\]]")
_QUAD = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_PAIR_OF_PAIRS = re.compile(rf"\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,?\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)")
_FULL_NUM = re.compile(rf"\s*{_NUM}\s*")
_INDEXED = re.compile(r"[xy](\d{1,4})")  # <points x1=.. y1=..>: point indices up to 9999

MAX_NUMBER_CHARS = 32  # longer numerals are not coordinates
MAX_COORD = 1e6  # |coordinate| in the model's own space

RawPoint = tuple[float, float]


def _finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) and abs(v) <= MAX_COORD for v in values)


def _float(s: str) -> float | None:
    """A coordinate read from text: None if it is too long, not finite or beyond `MAX_COORD`."""
    if len(s) > MAX_NUMBER_CHARS:
        return None
    v = float(s)
    return v if _finite((v,)) else None


# --- raw readers: syntax only ------------------------------------------------------------------

def _attrs(body: str) -> dict[str, str]:
    return {m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None) for m in _ATTR.finditer(body)}


def _number(s: str | None) -> float | None:
    return _float(s.strip()) if s is not None and _FULL_NUM.fullmatch(s) else None


def _xml_points(tags: Sequence[tuple[str, dict[str, str]]]) -> list[RawPoint] | None:
    """Points from Molmo ``<point x y>`` and ``<points x1 y1 x2 y2 ...>`` tags; None if one is malformed."""
    out: list[RawPoint] = []
    for name, attrs in tags:
        if name == "point":
            x, y = _number(attrs.get("x")), _number(attrs.get("y"))
            if x is None or y is None:
                return None
            out.append((x, y))
            continue
        if any(k[:1] in "xy" and k[1:].isdigit() and not _INDEXED.fullmatch(k) for k in attrs):
            return None  # x<huge index>: not a point list
        idx = sorted({int(m.group(1)) for k in attrs if (m := _INDEXED.fullmatch(k))})
        if not idx:
            return None
        for i in idx:
            x, y = _number(attrs.get(f"x{i}")), _number(attrs.get(f"y{i}"))
            if x is None or y is None:
                return None
            out.append((x, y))
    return out


def _bin_values(text: str) -> list[tuple[str, float]] | None:
    """The bin tokens in order; None when one is not a readable number."""
    out = []
    for m in _BIN.finditer(text):
        v = _float(m.group(2))
        if v is None:
            return None
        out.append((m.group(1).lower(), v))
    return out


def _bin_points(text: str) -> list[RawPoint] | None:
    """``<x_a> <y_b>`` token pairs in order; None unless they alternate x, y."""
    vals = _bin_values(text)
    if vals is None or len(vals) % 2:
        return None
    pairs = list(zip(vals[::2], vals[1::2], strict=True))
    if any(a != "x" or b != "y" for (a, _), (b, _) in pairs):
        return None
    return [(x, y) for (_, x), (_, y) in pairs]


def _attr_tags(text: str, names: tuple[str, ...]) -> list[tuple[str, dict[str, str]]]:
    tags = []
    for m in _TAG.finditer(text):
        attrs = _attrs(m.group(2))
        if m.group(1).lower() in names and attrs:
            tags.append((m.group(1).lower(), attrs))
    return tags


def read_points(text: str) -> list[RawPoint] | None:
    """Raw (x, y) numbers of every point in ``text``, in the first syntax family found:
    Molmo XML, then bin tokens, then ``(x, y)`` / ``[x, y]`` pairs. None: malformed markup."""
    tags = _attr_tags(text, ("point", "points"))
    if tags:
        return _xml_points(tags)
    if _BIN.search(text):
        return _bin_points(text)
    if re.search(r"<points?\b", text, re.IGNORECASE) and not _PAIR.search(text):
        # a <point>/<points> tag without coordinates anywhere is a malformed answer, not "nothing"
        return None
    pairs = [(_float(a), _float(b)) for a, b in _PAIR.findall(text)]
    if any(x is None or y is None for x, y in pairs):
        return None
    return pairs  # type: ignore[return-value]


def read_box(text: str) -> tuple[float, float, float, float] | None:
    """Raw (x1, y1, x2, y2) of the first box in ``text``: ``<box x1 y1 x2 y2>``, four bin tokens,
    ``[x1, y1, x2, y2]``, or ``(x1, y1), (x2, y2)``. None when there is no (well-formed) box."""
    tags = _attr_tags(text, ("box",))
    if tags:
        a = tags[0][1]
        vals = [_number(a.get(k)) for k in ("x1", "y1", "x2", "y2")]
        return None if any(v is None for v in vals) else tuple(vals)  # type: ignore[return-value]
    bins = _bin_values(text)
    if bins is None:
        return None
    if bins:
        if len(bins) < 4 or [k for k, _ in bins[:4]] != ["x", "y", "x", "y"]:
            return None
        return tuple(v for _, v in bins[:4])  # type: ignore[return-value]
    quad, pairs = _QUAD.search(text), _PAIR_OF_PAIRS.search(text)
    found = [m for m in (quad, pairs) if m is not None]
    if not found:
        return None
    first = min(found, key=lambda m: m.start())
    values = [_float(v) for v in first.groups()]
    return None if any(v is None for v in values) else tuple(values)  # type: ignore[return-value]


# --- conversion to pixels: the declared space decides the scale ---------------------------------

def to_pixels(raw: Sequence[RawPoint], space: CoordSpace, size: tuple[int, int] | None) -> tuple[Point, ...]:
    return tuple(space.to_pixels(x, y, size) for x, y in raw)


def _readable(values: Sequence[Sequence[float]]) -> bool:
    """Structured numbers from a backend: pairs or a quad of finite numbers within `MAX_COORD`."""
    try:
        return all(_finite([float(v) for v in vs]) for vs in values)
    except (TypeError, ValueError):
        return False


def parse_points(text: str, space: CoordSpace, size: tuple[int, int] | None) -> tuple[Point, ...] | None:
    """Every point in ``text`` in pixels of an image of ``size=(W, H)``; None when the markup is malformed."""
    raw = read_points(text)
    return None if raw is None else to_pixels(raw, space, size)


def parse_box(text: str, space: CoordSpace, size: tuple[int, int] | None) -> Box | None:
    """The first box in ``text`` as pixel corners ``(x1, y1, x2, y2)`` (not reordered, not clipped)."""
    raw = read_box(text)
    if raw is None:
        return None
    return box_to_pixels(raw, space, size)


def box_to_pixels(raw: Sequence[float], space: CoordSpace, size: tuple[int, int] | None) -> Box:
    x1, y1 = space.to_pixels(raw[0], raw[1], size)
    x2, y2 = space.to_pixels(raw[2], raw[3], size)
    return (x1, y1, x2, y2)


def generation_points(gen: Generation, space: CoordSpace, size: tuple[int, int] | None
                      ) -> tuple[Point, ...] | None:
    """Structured points a backend returned (in its space) take precedence over points in the text."""
    if gen.points is not None:
        if not _readable(gen.points) or any(len(p) != 2 for p in gen.points):
            return None
        return to_pixels(gen.points, space, size)
    return parse_points(gen.text, space, size)


def generation_box(gen: Generation, space: CoordSpace, size: tuple[int, int] | None) -> Box | None:
    if gen.box is not None:
        if len(gen.box) != 4 or not _readable([gen.box]):
            return None
        return box_to_pixels(gen.box, space, size)
    return parse_box(gen.text, space, size)


# --- writing a point in a model's space (prompts that give a point) -----------------------------

def format_point(point: Point, space: CoordSpace, size: tuple[int, int] | None) -> str:
    """A pixel point written the way a model of ``space`` writes points (the inverse of `parse_points`)."""
    x, y = space.from_pixels(point[0], point[1], size)
    if space is CoordSpace.PERCENT:
        return f'<point x="{x:.1f}" y="{y:.1f}" alt="point">point</point>'
    if space is CoordSpace.BINS:
        return f"<point> <x_{int(x)}> <y_{int(y)}>"
    if space is CoordSpace.NORMALIZED:
        return f"({x:.3f}, {y:.3f})"
    return f"({round(x)}, {round(y)})"

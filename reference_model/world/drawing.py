"""How each category is drawn: a list of coloured parts (boolean masks) inside the object's box.

Called by `scene.py` for every placed object. The union of an object's parts is its full mask;
a dark outline is drawn last so that neighbouring objects of similar colours stay separable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import raster
from .font import render_text, text_size
from .ontology import COLOURS, PANTS, SKIN_TONES

RGB = tuple[int, int, int]
Part = tuple[np.ndarray, RGB]

TEXT_PAD = 4  # pixels of sign board around the text


@dataclass(frozen=True)
class ObjectSpec:
    """An object decided by the layout sampler, before drawing. The box is the design box."""

    category: str
    colour: str
    x0: float
    y0: float
    w: float
    h: float
    text: str = ""  # signs: the word written on them
    text_scale: int = 2
    hat: str = ""  # people: hat colour name, "" for none
    skin: int = 0
    pants: int = 0


def dark(rgb: RGB, f: float = 0.55) -> RGB:
    return (int(rgb[0] * f), int(rgb[1] * f), int(rgb[2] * f))


def light(rgb: RGB, f: float = 0.5) -> RGB:
    return tuple(int(c + (255 - c) * f) for c in rgb)  # type: ignore[return-value]


def text_colour(board: RGB) -> RGB:
    luminance = 0.299 * board[0] + 0.587 * board[1] + 0.114 * board[2]
    return (20, 20, 20) if luminance > 150 else (250, 250, 250)


def sign_box_size(text: str, scale: int) -> tuple[int, int]:
    """(w, h) of a sign: a board around the text plus a post half the board's height."""
    tw, th = text_size(text, scale)
    bw, bh = tw + 2 * TEXT_PAD, th + 2 * TEXT_PAD
    return bw, bh + bh // 2


class _Box:
    """Maps unit coordinates (u, v) in [0, 1]^2 of the object's box to pixels."""

    def __init__(self, h: int, w: int, s: ObjectSpec):
        self.H, self.W, self.s = h, w, s

    def x(self, u: float) -> float:
        return self.s.x0 + u * self.s.w

    def y(self, v: float) -> float:
        return self.s.y0 + v * self.s.h

    def poly(self, pts: list[tuple[float, float]]) -> np.ndarray:
        return raster.polygon(self.H, self.W, [(self.x(u), self.y(v)) for u, v in pts])

    def rect(self, u0: float, v0: float, u1: float, v1: float) -> np.ndarray:
        return raster.rect(self.H, self.W, self.x(u0), self.y(v0), self.x(u1), self.y(v1))

    def ellipse(self, u: float, v: float, ru: float, rv: float) -> np.ndarray:
        return raster.ellipse(self.H, self.W, self.x(u), self.y(v), ru * self.s.w, rv * self.s.h)

    def line(self, u0: float, v0: float, u1: float, v1: float, r: float) -> np.ndarray:
        """A thick line; ``r`` is a fraction of the box's smaller side."""
        return raster.capsule(self.H, self.W, self.x(u0), self.y(v0), self.x(u1), self.y(v1),
                              r * min(self.s.w, self.s.h))


def _regular(n: int, r_out: float, r_in: float | None, rot: float) -> list[tuple[float, float]]:
    """Vertices of a regular polygon (or a star when ``r_in`` is given) in the unit box."""
    import math

    pts = []
    k = 2 * n if r_in is not None else n
    for i in range(k):
        a = rot + 2 * math.pi * i / k
        r = r_out if (r_in is None or i % 2 == 0) else r_in
        pts.append((round(0.5 + r * math.cos(a), 6), round(0.5 + r * math.sin(a), 6)))
    return pts


_STAR = [(u, v + 0.04) for u, v in _regular(5, 0.5, 0.21, -1.5707963267948966)]


def _person(b: _Box, c: RGB) -> list[Part]:
    s = b.s
    skin, pants = SKIN_TONES[s.skin], PANTS[s.pants]
    parts = [
        (b.rect(0.22, 0.6, 0.46, 1.0), pants),
        (b.rect(0.54, 0.6, 0.78, 1.0), pants),
        (b.line(0.2, 0.3, 0.04, 0.56, 0.09), c),
        (b.line(0.8, 0.3, 0.96, 0.56, 0.09), c),
        (b.poly([(0.18, 0.26), (0.82, 0.26), (0.86, 0.64), (0.14, 0.64)]), c),
        (b.ellipse(0.5, 0.15, 0.24, 0.12), skin),
    ]
    if s.hat:
        hat = COLOURS[s.hat]
        parts.append((b.rect(0.3, 0.0, 0.7, 0.07), hat))
        parts.append((b.rect(0.18, 0.06, 0.82, 0.1), hat))
    return parts


def _car(b: _Box, c: RGB) -> list[Part]:
    return [
        (b.poly([(0.22, 0.42), (0.32, 0.04), (0.7, 0.04), (0.8, 0.42)]), c),
        (b.poly([(0.3, 0.38), (0.37, 0.12), (0.49, 0.12), (0.49, 0.38)]), (200, 226, 240)),
        (b.poly([(0.53, 0.38), (0.53, 0.12), (0.65, 0.12), (0.72, 0.38)]), (200, 226, 240)),
        (b.rect(0.0, 0.4, 1.0, 0.8), c),
        (b.ellipse(0.22, 0.8, 0.1, 0.2), (30, 30, 30)),
        (b.ellipse(0.78, 0.8, 0.1, 0.2), (30, 30, 30)),
    ]


def _tree(b: _Box, c: RGB) -> list[Part]:
    return [(b.rect(0.4, 0.55, 0.6, 1.0), (110, 70, 36)), (b.ellipse(0.5, 0.36, 0.5, 0.36), c)]


def _house(b: _Box, c: RGB) -> list[Part]:
    return [
        (b.rect(0.1, 0.45, 0.9, 1.0), c),
        (b.poly([(0.0, 0.5), (0.5, 0.0), (1.0, 0.5)]), dark(c, 0.7)),
        (b.rect(0.42, 0.68, 0.6, 1.0), dark(c, 0.45)),
        (b.rect(0.18, 0.58, 0.34, 0.74), (210, 232, 246)),
        (b.rect(0.68, 0.58, 0.84, 0.74), (210, 232, 246)),
    ]


def _flower(b: _Box, c: RGB) -> list[Part]:
    parts: list[Part] = [(b.line(0.5, 0.4, 0.5, 1.0, 0.07), (52, 130, 52))]
    for u, v in ((0.5, 0.12), (0.22, 0.3), (0.78, 0.3), (0.32, 0.56), (0.68, 0.56)):
        parts.append((b.ellipse(u, v, 0.22, 0.13), c))
    centre = (120, 80, 30) if c == COLOURS["yellow"] else (246, 214, 60)
    parts.append((b.ellipse(0.5, 0.35, 0.15, 0.09), centre))
    return parts


def _ball(b: _Box, c: RGB) -> list[Part]:
    body = b.ellipse(0.5, 0.5, 0.5, 0.5)
    band = body & b.rect(0.0, 0.42, 1.0, 0.58)
    stripe = light(c, 0.75) if c != COLOURS["white"] else (40, 40, 40)
    return [(body, c), (band, stripe), (b.ellipse(0.32, 0.27, 0.09, 0.07), (252, 252, 252))]


def _cup(b: _Box, c: RGB) -> list[Part]:
    handle = b.ellipse(0.76, 0.5, 0.22, 0.22) & ~b.ellipse(0.76, 0.5, 0.11, 0.12) & b.rect(0.7, 0.0, 1.0, 1.0)
    return [
        (handle, c),
        (b.poly([(0.02, 0.08), (0.78, 0.08), (0.7, 1.0), (0.1, 1.0)]), c),
        (b.rect(0.02, 0.08, 0.78, 0.16), dark(c, 0.7)),
    ]


def _clock(b: _Box, c: RGB) -> list[Part]:
    return [
        (b.ellipse(0.5, 0.5, 0.5, 0.5), c),
        (b.ellipse(0.5, 0.5, 0.38, 0.38), (248, 248, 240)),
        (b.line(0.5, 0.5, 0.5, 0.2, 0.045), (20, 20, 20)),
        (b.line(0.5, 0.5, 0.72, 0.5, 0.045), (20, 20, 20)),
    ]


def _kite(b: _Box, c: RGB) -> list[Part]:
    return [
        (b.line(0.5, 0.72, 0.38, 1.0, 0.03), (40, 40, 40)),
        (b.poly([(0.5, 0.0), (1.0, 0.32), (0.5, 0.74), (0.0, 0.32)]), c),
        (b.line(0.5, 0.02, 0.5, 0.72, 0.025), dark(c)),
        (b.line(0.02, 0.32, 0.98, 0.32, 0.025), dark(c)),
    ]


def _sign(b: _Box, c: RGB) -> list[Part]:
    s = b.s
    bw, board_h = s.w, int(round(s.h / 1.5))
    text = render_text(s.text, s.text_scale)
    text_mask = np.zeros((b.H, b.W), dtype=bool)
    ty, tx = int(s.y0) + TEXT_PAD, int(s.x0) + TEXT_PAD
    th, tw = text.shape
    text_mask[ty:ty + th, tx:tx + tw] = text
    board = raster.rect(b.H, b.W, s.x0, s.y0, s.x0 + bw, s.y0 + board_h)
    post = raster.rect(b.H, b.W, s.x0 + bw / 2 - 2, s.y0 + board_h, s.x0 + bw / 2 + 2, s.y0 + s.h)
    return [(post, (96, 96, 100)), (board, c), (text_mask, text_colour(c))]


def _shape(points: list[tuple[float, float]]) -> Callable[[_Box, RGB], list[Part]]:
    return lambda b, c: [(b.poly(points), c)]


def _circle(b: _Box, c: RGB) -> list[Part]:
    return [(b.ellipse(0.5, 0.5, 0.5, 0.5), c)]


def _heart(b: _Box, c: RGB) -> list[Part]:
    m = b.ellipse(0.28, 0.3, 0.27, 0.28) | b.ellipse(0.72, 0.3, 0.27, 0.28)
    m |= b.poly([(0.03, 0.42), (0.97, 0.42), (0.5, 1.0)])
    return [(m, c)]


DRAW: dict[str, Callable[[_Box, RGB], list[Part]]] = {
    "person": _person, "car": _car, "tree": _tree, "house": _house, "flower": _flower, "ball": _ball,
    "cup": _cup, "clock": _clock, "kite": _kite, "sign": _sign, "circle": _circle,
    "square": _shape([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]),
    "triangle": _shape([(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)]),
    "star": _shape(_STAR), "heart": _heart,
    "diamond": _shape([(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)]),
    "hexagon": _shape([(0.25, 0.0), (0.75, 0.0), (1.0, 0.5), (0.75, 1.0), (0.25, 1.0), (0.0, 0.5)]),
}


def draw_object(h: int, w: int, spec: ObjectSpec) -> tuple[np.ndarray, list[Part], list[np.ndarray]]:
    """(full mask, parts to paint in order, key masks) of one object; the outline is the last part.

    Key masks are what a description of the object relies on: the pixels of its main colour and,
    for a person, the hat; occlusion must leave them mostly visible (see `scene.KEY_VISIBLE`)."""
    main = COLOURS[spec.colour]
    parts = DRAW[spec.category](_Box(h, w, spec), main)
    full = np.zeros((h, w), dtype=bool)
    key = np.zeros((h, w), dtype=bool)
    hat = np.zeros((h, w), dtype=bool)
    for m, rgb in parts:
        full |= m
        if rgb == main:
            key |= m
        elif spec.hat and rgb == COLOURS[spec.hat]:
            hat |= m
    outline = full & ~raster.erode(full)
    edge = dark(main) if spec.colour != "black" else (70, 70, 70)
    key &= ~outline
    return full, parts + [(outline, edge)], [key, hat & ~outline] if spec.hat else [key]

"""Scenes: a layout sampled from a scene id, drawn with an exact visible mask per object.

    scene id ──Rng──► theme, size, object plan ──place (occlusion rules)──► draw ──► Scene

Everything downstream (captions, questions, pointing targets, all benchmark annotations) reads a
`Scene`: its image and, per object, category, colour, text, visible mask, box and a point inside.
Occlusion rules: objects are painted in z order; every object keeps at least `MIN_VISIBLE` of its
own pixels (and `MIN_PIXELS` pixels) visible and `KEY_VISIBLE` of its main colour and hat (so what
describes it stays true), signs never overlap each other and are painted last
so their words stay readable. Visible masks may have holes and several parts; `formats.mask_polygons`
writes them exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from . import raster
from .drawing import ObjectSpec, draw_object, sign_box_size
from .ontology import (
    BY_NAME,
    CATEGORY_NAMES,
    COLOUR_NAMES,
    PANTS,
    SIGN_NUMBERS,
    SIGN_WORDS,
    SKIN_TONES,
    THEMES,
    theme_weights,
)
from .rng import Rng, derive

SIZES: tuple[tuple[int, int], ...] = (
    (224, 224), (256, 192), (192, 256), (240, 208), (208, 240), (256, 224), (224, 256), (240, 240),
)
SIZE_CLASSES = {"small": (0.13, 0.18), "medium": (0.19, 0.25), "large": (0.26, 0.33)}
MIN_VISIBLE = 0.55  # fraction of an object's own pixels that must stay visible
KEY_VISIBLE = 0.7  # fraction of its main colour (and of a hat) that must stay visible
MIN_PIXELS = 60
MAX_SIGNS = 2
PLACE_TRIES = 40


@dataclass(frozen=True)
class SceneSpec:
    """Constraints on a scene, for benchmark writers that need e.g. two people or a sign."""

    theme: str | None = None
    require: Mapping[str, int] = field(default_factory=dict)  # category -> minimum count
    n_objects: tuple[int, int] = (3, 8)
    min_categories: int = 1
    sign: bool | None = None  # force a sign (True), forbid signs (False), or let the theme decide
    colour_count: tuple[str, int] | None = None  # (colour, n): the first n objects placed get that colour


@dataclass(frozen=True, eq=False)
class SceneObject:
    index: int  # position in z order (0 = bottom); unique within the scene
    category: str
    colour: str
    text: str  # the sign's word, "" for other objects
    hat: str  # a person's hat colour, "" for none
    mask: np.ndarray  # (H, W) bool, the visible pixels
    box: tuple[int, int, int, int]  # (x1, y1, x2, y2) pixel extents of the visible mask, ends exclusive
    point: tuple[float, float]  # a pixel centre deep inside the visible mask
    area: int  # visible pixels
    full_area: int  # pixels before occlusion
    occluded_by: tuple[int, ...]  # indices of objects painted over this one

    @property
    def cx(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    @property
    def cy(self) -> float:
        return (self.box[1] + self.box[3]) / 2

    @property
    def coco_bbox(self) -> list[int]:
        x1, y1, x2, y2 = self.box
        return [x1, y1, x2 - x1, y2 - y1]


@dataclass(frozen=True, eq=False)
class Scene:
    scene_id: int
    theme: str
    width: int
    height: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    objects: tuple[SceneObject, ...]

    def of(self, category: str) -> list[SceneObject]:
        return [o for o in self.objects if o.category == category]

    def categories(self) -> list[str]:
        """Categories present, in the ontology's order."""
        present = {o.category for o in self.objects}
        return [c for c in CATEGORY_NAMES if c in present]


def make_scene(scene_id: int, spec: SceneSpec | None = None) -> Scene:
    """The scene of ``scene_id`` under ``spec``: a pure function of both."""
    spec = spec or SceneSpec()
    rng = Rng(derive("scene", scene_id))
    w, h = rng.choice(SIZES)
    theme = spec.theme or rng.choice(THEMES)
    plan = _plan(rng, theme, spec)
    specs = _place(rng, plan, w, h, spec.colour_count)
    return _render(scene_id, theme, w, h, specs, rng)


def _plan(rng: Rng, theme: str, spec: SceneSpec) -> list[tuple[str, bool]]:
    """(category, required) to place, required ones first, signs last."""
    weights = theme_weights(theme)
    if spec.sign is False:
        weights["sign"] = 0.0
    names = list(weights)
    plan = [c for c, n in spec.require.items() for _ in range(n)]
    total = max(rng.randint(*spec.n_objects), len(plan))
    while len(plan) < total or len(set(plan)) < spec.min_categories:
        cat = rng.weighted(names, [weights[n] for n in names])
        reps = rng.weighted((1, 2, 3), (0.6, 0.25, 0.15))
        for _ in range(reps):
            if len(plan) < total or len(set(plan)) < spec.min_categories:
                plan.append(cat)
    if spec.sign and "sign" not in plan:
        plan.append("sign")
    n_signs = spec.require.get("sign", 1 if spec.sign else 0)
    signs = [("sign", i < n_signs) for i, c in enumerate(c for c in plan if c == "sign")]
    rest = [c for c in plan if c != "sign"]
    n_req = sum(n for c, n in spec.require.items() if c != "sign")
    ordered = [(c, True) for c in rest[:n_req]] + [(c, False) for c in rng.shuffled(rest[n_req:])]
    return ordered + signs[:max(MAX_SIGNS, n_signs)]


def _object_spec(rng: Rng, cat: str, w: int, h: int, shrink: float, forced: str | None = None) -> ObjectSpec:
    colour = rng.choice(COLOUR_NAMES)
    if forced is not None:
        colour = forced
    if cat == "sign":
        text = rng.choice(SIGN_WORDS) if rng.chance(0.75) else rng.choice(SIGN_NUMBERS)
        scale = 3 if (rng.chance(0.3) and shrink == 1.0) else 2
        bw, bh = sign_box_size(text, scale)
        if bw > w - 4:
            scale = 2
            bw, bh = sign_box_size(text, scale)
        sx = rng.randint(1, w - bw - 1)  # whole pixels: the glyphs land on the pixel grid
        sy = rng.randint(1, h - bh - 1)
        return ObjectSpec(cat, colour, float(sx), float(sy), float(bw), float(bh), text=text, text_scale=scale)
    size_class = rng.weighted(("small", "medium", "large"), (0.35, 0.4, 0.25))
    lo, hi = SIZE_CLASSES[size_class]
    s = rng.uniform(lo, hi) * min(w, h) * shrink
    aspect = BY_NAME[cat].aspect
    if cat == "person":
        s *= 1.15
    bw, bh = s * aspect ** 0.5, s / aspect ** 0.5
    x0 = rng.uniform(1.0, w - bw - 1.0)
    y0 = rng.uniform(1.0, h - bh - 1.0)
    hat = ""
    if cat == "person" and rng.chance(0.35):
        hat = rng.choice([c for c in COLOUR_NAMES if c != colour])
    return ObjectSpec(cat, colour, x0, y0, bw, bh, hat=hat, skin=rng.below(len(SKIN_TONES)),
                      pants=rng.below(len(PANTS)))


@dataclass
class _Placed:
    spec: ObjectSpec
    full: np.ndarray
    parts: list
    keys: list  # masks of the main colour (and hat) with their pixel counts, see drawing.draw_object
    visible: np.ndarray
    box: tuple[int, int, int, int]  # row0, row1, col0, col1 of the full mask
    full_area: int


def _boxes_meet(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _fits(new: np.ndarray, new_box: tuple[int, int, int, int], placed: list[_Placed], is_sign: bool) -> bool:
    r0, r1, c0, c1 = new_box
    for p in placed:
        pr0, pr1, pc0, pc1 = p.box
        if r1 <= pr0 or pr1 <= r0 or c1 <= pc0 or pc1 <= c0:
            continue  # boxes apart
        if is_sign and p.spec.category == "sign":
            return False
        overlap = int(np.count_nonzero(new & p.visible))
        if overlap == 0:
            continue
        left = int(np.count_nonzero(p.visible)) - overlap
        if left < MIN_VISIBLE * p.full_area or left < MIN_PIXELS:
            return False
        for key, n_key in p.keys:
            if np.count_nonzero(key & p.visible & ~new) < KEY_VISIBLE * n_key:
                return False
    return True


def _place(rng: Rng, plan: list[tuple[str, bool]], w: int, h: int,
           colour_count: tuple[str, int] | None = None) -> list[_Placed]:
    placed: list[_Placed] = []
    for cat, is_required in plan:
        forced = None
        if colour_count is not None and sum(p.spec.colour == colour_count[0] for p in placed) < colour_count[1]:
            forced = colour_count[0]
        tries = PLACE_TRIES * (3 if is_required or forced else 1)
        for t in range(tries):
            shrink = 1.0 if t < PLACE_TRIES else 0.7
            spec = _object_spec(rng, cat, w, h, shrink, forced)
            full, parts, keys = draw_object(h, w, spec)
            area = int(np.count_nonzero(full))
            if area < 2 * MIN_PIXELS:
                continue
            box = raster.bbox(full)
            if not _fits(full, box, placed, cat == "sign"):
                continue
            for p in placed:
                p.visible &= ~full
            placed.append(_Placed(spec, full, parts, [(k, int(np.count_nonzero(k))) for k in keys], full.copy(),
                                  box, area))
            break
        else:
            assert not is_required, f"could not place required {cat!r}"
    return placed


def _background(rng: Rng, theme: str, w: int, h: int) -> np.ndarray:
    img = np.empty((h, w, 3), dtype=np.int32)
    if theme == "gallery":
        top = rng.choice(((240, 240, 232), (226, 234, 244), (244, 234, 222), (232, 244, 232)))
        _gradient(img, 0, h, top, tuple(c - 16 for c in top))
    else:
        horizon = int(h * rng.uniform(0.35, 0.6))
        if theme == "kitchen":
            upper, lower = ((236, 226, 204), (226, 214, 190)), ((200, 166, 124), (176, 142, 100))
        else:
            upper = ((150, 198, 240), (206, 228, 246))
            lower = ((206, 196, 174), (186, 176, 156)) if theme == "street" else ((156, 206, 124), (120, 180, 96))
        _gradient(img, 0, horizon, *upper)
        _gradient(img, horizon, h, *lower)
    ys, xs = _grid(h, w)
    salt = np.uint32(rng.u64() & 0xFFFFFFFF)
    noise = ((xs * np.uint32(73856093)) ^ (ys * np.uint32(19349663)) ^ salt) * np.uint32(2654435761)
    img += ((noise >> np.uint32(29)).astype(np.int32) - 3)[:, :, None]
    return np.clip(img, 0, 255).astype(np.uint8)


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    if (h, w) not in _GRIDS:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.uint32)
        _GRIDS[(h, w)] = (ys, xs)
    return _GRIDS[(h, w)]


def _gradient(img: np.ndarray, r0: int, r1: int, c0: tuple, c1: tuple) -> None:
    n = max(r1 - r0 - 1, 1)
    i = np.arange(r1 - r0, dtype=np.int32)[:, None]
    for ch in range(3):
        img[r0:r1, :, ch] = (c0[ch] * (n - i) + c1[ch] * i) // n


def _render(scene_id: int, theme: str, w: int, h: int, placed: list[_Placed], rng: Rng) -> Scene:
    img = _background(rng, theme, w, h)
    for p in placed:
        r0, r1, c0, c1 = p.box  # every part lies inside the full mask's box
        window = img[r0:r1, c0:c1]
        for mask, rgb in p.parts:
            window[mask[r0:r1, c0:c1]] = rgb
    objects = []
    for i, p in enumerate(placed):
        r0, r1, c0, c1 = raster.bbox(p.visible)
        over = tuple(j for j in range(i + 1, len(placed)) if _boxes_meet(p.box, placed[j].box)
                     and (placed[j].full & p.full).any())
        objects.append(SceneObject(
            index=i, category=p.spec.category, colour=p.spec.colour, text=p.spec.text, hat=p.spec.hat,
            mask=p.visible, box=(c0, r0, c1, r1), point=raster.interior_point(p.visible),
            area=int(np.count_nonzero(p.visible)), full_area=p.full_area, occluded_by=over))
    img.setflags(write=False)
    return Scene(scene_id, theme, w, h, img, tuple(objects))

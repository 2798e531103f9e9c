"""Words about scenes: names, positions, relations, unique referring expressions and captions.

Questions (`questions.py`), training streams (`training.py`) and benchmark writers all name objects
through this module, so one object is described the same way everywhere and a description used
in a question is guaranteed to pick out exactly one object of the scene (`referring`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .ontology import BY_NAME, LOCATION_WORDS
from .rng import Rng
from .scene import Scene, SceneObject

SIZE_RATIO = 1.6  # "big"/"small" only when the area ratio to the runner-up is at least this
SEPARATION = 0.12  # "left"/"right"... only when the extreme is this fraction of the image apart
RELATION_MARGIN = 0.08  # "left of" etc. need centres this fraction of the image apart


def noun(o: SceneObject | str) -> str:
    return o if isinstance(o, str) else o.category


def plural(category: str) -> str:
    return BY_NAME[category].plural


def coloured(o: SceneObject, colour: str | None = None) -> str:
    """The object named with its colour: 'red car', 'person in red', 'red sign'."""
    c = colour or o.colour
    return f"person in {c}" if o.category == "person" else f"{c} {o.category}"


def coloured_plural(category: str, colour: str) -> str:
    return f"people in {colour}" if category == "person" else f"{colour} {plural(category)}"


def article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def count_phrase(n: int, category: str) -> str:
    return f"{n} {category if n == 1 else plural(category)}"


# --- positions ----------------------------------------------------------------------------------

def horizontal(scene: Scene, o: SceneObject) -> str:
    x = o.cx / scene.width
    return "left" if x < 1 / 3 else "right" if x > 2 / 3 else "middle"


def vertical(scene: Scene, o: SceneObject) -> str:
    y = o.cy / scene.height
    return "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else "middle"


def region(scene: Scene, o: SceneObject) -> str:
    """One of 9 answers to 'where is it': 'top left', 'left', 'middle', 'bottom right', ..."""
    h, v = horizontal(scene, o), vertical(scene, o)
    if h == "middle" and v == "middle":
        return "middle"
    if v == "middle":
        return h
    if h == "middle":
        return v
    return f"{v} {h}"


REGIONS = ("top left", "top", "top right", "left", "middle", "right", "bottom left", "bottom", "bottom right")


def region_phrase(r: str) -> str:
    """'on the left', 'at the top right', 'in the middle'."""
    if r == "middle":
        return "in the middle"
    if r in ("left", "right"):
        return f"on the {r}"
    return f"at the {r}"


# --- relations ------------------------------------------------------------------------------------

RELATIONS = ("to the left of", "to the right of", "above", "below", "in front of", "behind")
OPPOSITE = {"to the left of": "to the right of", "to the right of": "to the left of", "above": "below",
            "below": "above", "in front of": "behind", "behind": "in front of"}


def holds(scene: Scene, a: SceneObject, rel: str, b: SceneObject) -> bool:
    """Whether ``a rel b`` clearly holds (positions with a margin; front/behind by occlusion)."""
    mx, my = RELATION_MARGIN * scene.width, RELATION_MARGIN * scene.height
    if rel == "to the left of":
        return a.cx + mx < b.cx
    if rel == "to the right of":
        return a.cx > b.cx + mx
    if rel == "above":
        return a.cy + my < b.cy
    if rel == "below":
        return a.cy > b.cy + my
    if rel == "in front of":
        return a.index in b.occluded_by
    if rel == "behind":
        return b.index in a.occluded_by
    raise ValueError(rel)


def clear_relations(scene: Scene, a: SceneObject, b: SceneObject) -> list[str]:
    return [r for r in RELATIONS if holds(scene, a, r, b)]


# --- referring expressions ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    """A phrase (without article) that picks out exactly one object of its scene."""

    phrase: str
    kind: str  # category | colour | hat | text | size | location | relation
    uses_colour: bool = False
    attr: str = ""  # the attribute value that singles the object out (colour, word, side, ...)
    rel: str = ""  # relation kind: the relation to the anchor
    anchor: int = -1  # relation kind: the anchor object's index
    anchor_ref: Ref | None = None  # relation kind: how the anchor is named

    @property
    def has_location_words(self) -> bool:
        return any(w in LOCATION_WORDS for w in self.phrase.split())


def _unique(scene: Scene, t: SceneObject, pred) -> bool:
    return [o.index for o in scene.objects if pred(o)] == [t.index]


def _extreme(values: list[tuple[float, int]], t: SceneObject, gap: float) -> str:
    """'min' / 'max' when t is the strict extreme of the values by at least ``gap``, else ''."""
    vs = sorted(values)
    if len(vs) < 2:
        return ""
    if vs[0][1] == t.index and vs[1][0] - vs[0][0] >= gap:
        return "min"
    if vs[-1][1] == t.index and vs[-1][0] - vs[-2][0] >= gap:
        return "max"
    return ""


def referring(scene: Scene, t: SceneObject) -> list[Ref]:
    """Every unique description of ``t`` this module can make, simplest first."""
    out: list[Ref] = []
    cat = t.category
    same = [o for o in scene.objects if o.category == cat]
    if _unique(scene, t, lambda o: o.category == cat):
        out.append(Ref(cat, "category"))
    if _unique(scene, t, lambda o: o.category == cat and o.colour == t.colour):
        out.append(Ref(coloured(t), "colour", uses_colour=True, attr=t.colour))
    if cat == "person":
        if t.hat and _unique(scene, t, lambda o: o.category == cat and bool(o.hat)):
            out.append(Ref("person with a hat", "hat", attr="hat"))
        if t.hat and _unique(scene, t, lambda o: o.category == cat and o.hat == t.hat):
            out.append(Ref(f"person with {article(t.hat + ' hat')}", "hat", uses_colour=True, attr=f"{t.hat} hat"))
        if not t.hat and _unique(scene, t, lambda o: o.category == cat and not o.hat):
            out.append(Ref("person without a hat", "hat", attr="no hat"))
    if cat == "sign" and _unique(scene, t, lambda o: o.category == cat and o.text == t.text):
        out.append(Ref(f"sign that says {t.text}", "text", attr=t.text))
    out += _size_refs(t, same)
    out += _location_refs(scene, t, same)
    out += _relation_refs(scene, t, same)
    return out


def _size_refs(t: SceneObject, same: list[SceneObject]) -> list[Ref]:
    ext = _extreme([(float(o.full_area), o.index) for o in same], t, 0.0)
    if not ext:
        return []
    areas = sorted(o.full_area for o in same)
    ratio = areas[1] / areas[0] if ext == "min" else areas[-1] / areas[-2]
    if ratio < SIZE_RATIO:
        return []
    two = len(same) == 2
    word = ("small" if two else "smallest") if ext == "min" else ("big" if two else "biggest")
    return [Ref(f"{word} {t.category}", "size", attr=word)]


def _location_refs(scene: Scene, t: SceneObject, same: list[SceneObject]) -> list[Ref]:
    out = []
    ext = _extreme([(o.cx, o.index) for o in same], t, SEPARATION * scene.width)
    if ext:
        side = "left" if ext == "min" else "right"
        word = side if len(same) == 2 else f"{side}most"
        out.append(Ref(f"{t.category} on the {side}" if len(same) == 2 else f"{word} {t.category}", "location",
                       attr=side))
    ext = _extreme([(o.cy, o.index) for o in same], t, SEPARATION * scene.height)
    if ext:
        side = "top" if ext == "min" else "bottom"
        out.append(Ref(f"{t.category} at the {side}", "location", attr=side))
    return out


def _relation_refs(scene: Scene, t: SceneObject, same: list[SceneObject]) -> list[Ref]:
    out = []
    for anchor in scene.objects:
        if anchor.category == t.category:
            continue
        simple = referring_simple(scene, anchor)
        if not simple:
            continue
        for rel in clear_relations(scene, t, anchor):
            if all(not holds(scene, o, rel, anchor) for o in same if o.index != t.index):
                out.append(Ref(f"{t.category} {rel} the {simple[0].phrase}", "relation",
                               uses_colour=simple[0].uses_colour, rel=rel, anchor=anchor.index,
                               anchor_ref=simple[0]))
    return out


def referring_simple(scene: Scene, t: SceneObject) -> list[Ref]:
    """Unique descriptions by category or category + colour only (anchors of relations)."""
    out = []
    if _unique(scene, t, lambda o: o.category == t.category):
        out.append(Ref(t.category, "category"))
    if _unique(scene, t, lambda o: o.category == t.category and o.colour == t.colour):
        out.append(Ref(coloured(t), "colour", uses_colour=True, attr=t.colour))
    return out


def pick_ref(rng: Rng, refs: list[Ref], *, colour: bool = True, location: bool = True,
             kinds: tuple[str, ...] | None = None) -> Ref | None:
    """A random description among the allowed ones, preferring the simpler kinds."""
    ok = [r for r in refs if (colour or not r.uses_colour) and (location or not r.has_location_words)
          and (kinds is None or r.kind in kinds)]
    if not ok:
        return None
    simple = [r for r in ok if r.kind in ("category", "colour", "text", "hat")]
    pool = simple if simple and rng.chance(0.7) else ok
    return rng.choice(pool)


# --- captions ----------------------------------------------------------------------------------------

def _object_phrase(scene: Scene, o: SceneObject) -> str:
    size = "large " if o.full_area > 0.06 * scene.width * scene.height else (
        "small " if o.full_area < 0.012 * scene.width * scene.height else "")
    if o.category == "person":
        hat = f" with {article(o.hat + ' hat')}" if o.hat else ""
        return f"{article(size + 'person') if size else 'a person'} in {o.colour}{hat}"
    if o.category == "sign":
        return f"{article(size + o.colour + ' sign')} that says {o.text}"
    return article(f"{size}{o.colour} {o.category}")


def caption(scene: Scene, rng: Rng) -> str:
    """A PixMo-Cap-like dense caption: scene type, every object with colour, size and place,
    counts, a few relations and the words on signs."""
    objs = sorted(scene.objects, key=lambda o: (o.cx, o.cy, o.index))
    theme = {"street": "A street scene", "park": "A park scene", "kitchen": "A kitchen scene",
             "gallery": "A picture of shapes"}[scene.theme]
    n = len(objs)
    sentences = [f"{theme} with {n} {'object' if n == 1 else 'objects'}."]
    for i, o in enumerate(objs):
        where = region_phrase(region(scene, o))
        lead = "On the far left there is" if i == 0 and n > 1 else rng.choice(("There is", "There is", "Next is"))
        sentences.append(f"{lead} {_object_phrase(scene, o)} {where}.")
    counts: dict[str, int] = {}
    for o in objs:
        counts[o.category] = counts.get(o.category, 0) + 1
    multi = [c for c, k in counts.items() if k > 1]
    if multi:
        parts = [count_phrase(counts[c], c) for c in multi]
        sentences.append("In total there are " + _join(parts) + ".")
    rels = []
    for a in objs:
        for b in objs:
            if a.index in b.occluded_by:
                rels.append(f"The {coloured(a)} is in front of the {coloured(b)}.")
    sentences += rels[:2]
    return " ".join(sentences)


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]

"""Question-answer pairs about a scene, by family (colour, counting, existence, reading, ...).

The PixMo-Ask training stream and the VQAv2 / TextVQA / GQA / MMBench writers draw from these
families. Leak control: answers are chosen before questions where the family allows it (yes/no
is a coin flip, counts are drawn first), and every object is named by a description that is
unique in its scene and never contains the asked attribute, so the question text alone does not
give the answer away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .language import (
    OPPOSITE,
    clear_relations,
    coloured,
    coloured_plural,
    holds,
    pick_ref,
    plural,
    referring,
    region,
)
from .ontology import BY_NAME, CATEGORY_NAMES, COLOUR_NAMES, SHAPES, THEMES
from .rng import Rng
from .scene import Scene


@dataclass(frozen=True)
class QA:
    question: str
    answer: str  # canonical short answer: lower case, digits for numbers
    family: str
    answer_type: str  # "yes/no" | "number" | "other" (VQA's answer types)
    objects: tuple[int, ...] = ()  # indices of the objects the question is about
    wrong: tuple[str, ...] = ()  # plausible wrong answers (distractors for choices and annotator noise)


def _yn(want: bool) -> str:
    return "yes" if want else "no"


def _others(pool: tuple[str, ...] | list[str], answer: str) -> tuple[str, ...]:
    return tuple(x for x in pool if x != answer)


def q_color(scene: Scene, rng: Rng) -> QA | None:
    t = rng.choice(scene.objects)
    ref = pick_ref(rng, referring(scene, t), colour=False)
    if ref is None:
        return None
    if t.category == "person":
        q = rng.choice((f"What color shirt is the {ref.phrase} wearing?",
                        f"What color is the shirt of the {ref.phrase}?"))
    else:
        q = rng.choice((f"What color is the {ref.phrase}?", f"What is the color of the {ref.phrase}?",
                        f"What color is the {ref.phrase}?"))
    return QA(q, t.colour, "color", "other", (t.index,), _others(COLOUR_NAMES, t.colour))


def _count_candidates(scene: Scene) -> list[tuple[str, int, tuple[int, ...]]]:
    """(noun phrase in plural, count, object indices) for categories, colour-categories, colours."""
    out = []
    for cat in CATEGORY_NAMES:
        objs = scene.of(cat)
        out.append((plural(cat), len(objs), tuple(o.index for o in objs)))
        for c in COLOUR_NAMES:
            sel = [o for o in objs if o.colour == c]
            if sel:
                out.append((coloured_plural(cat, c), len(sel), tuple(o.index for o in sel)))
    return out


def q_count(scene: Scene, rng: Rng) -> QA | None:
    want = rng.weighted((0, 1, 2, 3, 4, 5), (0.04, 0.12, 0.22, 0.24, 0.2, 0.18))
    cands = [c for c in _count_candidates(scene) if c[1] == want]
    if not cands:
        return None
    phrase, n, idx = rng.choice(cands)
    q = rng.choice((f"How many {phrase} are there?", f"How many {phrase} are in the picture?",
                    f"How many {phrase} can you see?", f"How many {phrase} are in the image?"))
    wrong = tuple(str(k) for k in (n - 1, n + 1, n + 2) if k >= 0)
    return QA(q, str(n), "count", "number", idx, wrong)


def q_exist(scene: Scene, rng: Rng) -> QA | None:
    want = rng.chance(0.5)
    present = scene.categories()
    if want:
        t = rng.choice(scene.objects)
        use_colour = rng.chance(0.4)
        thing = coloured(t) if use_colour else t.category
        idx: tuple[int, ...] = tuple(o.index for o in scene.objects
                                     if o.category == t.category and (not use_colour or o.colour == t.colour))
    else:
        if rng.chance(0.5):
            absent = [c for c in CATEGORY_NAMES if c not in present]
            thing = rng.choice(absent)
        else:  # a present category in a colour it does not have here: a harder negative
            cat = rng.choice(present)
            colours = [c for c in COLOUR_NAMES if all(o.colour != c for o in scene.of(cat))]
            thing = coloured(scene.of(cat)[0], rng.choice(colours))
        idx = ()
    article_thing = ("an " if thing[0] in "aeiou" else "a ") + thing
    if thing.startswith("person in"):
        q = rng.choice((f"Is there a {thing}?", f"Is there a {thing} in the image?"))
    else:
        q = rng.choice((f"Is there {article_thing}?", f"Is there {article_thing} in the image?",
                        f"Is there {article_thing} in the picture?"))
    return QA(q, _yn(want), "exist", "yes/no", idx, (_yn(not want),))


def q_verify_color(scene: Scene, rng: Rng) -> QA | None:
    t = rng.choice(scene.objects)
    ref = pick_ref(rng, referring(scene, t), colour=False)
    if ref is None:
        return None
    want = rng.chance(0.5)
    c = t.colour if want else rng.choice(_others(COLOUR_NAMES, t.colour))
    q = f"Is the {ref.phrase} wearing {c}?" if t.category == "person" else f"Is the {ref.phrase} {c}?"
    return QA(q, _yn(want), "verify_color", "yes/no", (t.index,), (_yn(not want),))


def q_category(scene: Scene, rng: Rng) -> QA | None:
    t = rng.choice(scene.objects)
    if [o.index for o in scene.objects if o.colour == t.colour] == [t.index]:
        q = rng.choice((f"What is the {t.colour} object?", f"What is the {t.colour} thing?",
                        f"What kind of object is {t.colour}?"))
        return QA(q, t.category, "category", "other", (t.index,), _others(CATEGORY_NAMES, t.category))
    return None


def q_shape(scene: Scene, rng: Rng) -> QA | None:
    shapes = [o for o in scene.objects if o.category in SHAPES]
    if not shapes:
        return None
    t = rng.choice(shapes)
    if [o.index for o in scene.objects if o.colour == t.colour] != [t.index]:
        return None
    q = rng.choice((f"What shape is the {t.colour} object?", f"What shape is the {t.colour} one?"))
    return QA(q, t.category, "shape", "other", (t.index,), _others(SHAPES, t.category))


def q_where(scene: Scene, rng: Rng) -> QA | None:
    t = rng.choice(scene.objects)
    ref = pick_ref(rng, referring(scene, t), location=False)
    if ref is None:
        return None
    from .language import REGIONS

    r = region(scene, t)
    q = rng.choice((f"Where is the {ref.phrase}?", f"Where is the {ref.phrase} in the image?"))
    return QA(q, r, "where", "other", (t.index,), _others(REGIONS, r))


def q_read(scene: Scene, rng: Rng) -> QA | None:
    signs = scene.of("sign")
    if not signs:
        return None
    t = rng.choice(signs)
    is_number = t.text.isdigit()
    if len(signs) == 1:
        what = "the sign"
    else:
        ref = pick_ref(rng, [r for r in referring(scene, t) if r.kind != "text"])
        if ref is None:
            return None
        what = f"the {ref.phrase}"
    forms = [f"What does {what} say?", f"What is written on {what}?"]
    forms.append(f"What number is on {what}?" if is_number else f"What word is on {what}?")
    return QA(rng.choice(forms), t.text.lower(), "read", "number" if is_number else "other", (t.index,))


def q_relation(scene: Scene, rng: Rng) -> QA | None:
    if len(scene.objects) < 2:
        return None
    a, b = rng.sample(scene.objects, 2)
    rels = clear_relations(scene, a, b)
    if not rels:
        return None
    ra = pick_ref(rng, referring(scene, a), kinds=("category", "colour", "text", "hat"))
    rb = pick_ref(rng, referring(scene, b), kinds=("category", "colour", "text", "hat"))
    if ra is None or rb is None:
        return None
    want = rng.chance(0.5)
    rel = rng.choice(rels)
    if not want:
        rel = OPPOSITE[rel]
    assert holds(scene, a, rel, b) == want
    return QA(f"Is the {ra.phrase} {rel} the {rb.phrase}?", _yn(want), "relation", "yes/no", (a.index, b.index),
              (_yn(not want),))


def q_compare(scene: Scene, rng: Rng) -> QA | None:
    if len(scene.objects) < 2:
        return None
    a, b = rng.sample(scene.objects, 2)
    big, small = (a, b) if a.full_area >= b.full_area else (b, a)
    if big.full_area < 1.6 * small.full_area:
        return None
    ra = pick_ref(rng, referring(scene, a), kinds=("category", "colour", "text", "hat"))
    rb = pick_ref(rng, referring(scene, b), kinds=("category", "colour", "text", "hat"))
    if ra is None or rb is None:
        return None
    word = rng.choice(("bigger", "larger", "smaller"))
    want = (a is big) == (word != "smaller")
    return QA(f"Is the {ra.phrase} {word} than the {rb.phrase}?", _yn(want), "compare", "yes/no",
              (a.index, b.index), (_yn(not want),))


def q_hat(scene: Scene, rng: Rng) -> QA | None:
    want = rng.chance(0.5)
    people = [p for p in scene.of("person") if bool(p.hat) == want]
    if not people:
        return None
    t = rng.choice(people)
    ref = pick_ref(rng, [r for r in referring(scene, t) if r.kind != "hat"])
    if ref is None:
        return None
    if t.hat and rng.chance(0.4):
        return QA(f"What color is the hat of the {ref.phrase}?", t.hat, "hat_color", "other", (t.index,),
                  _others(COLOUR_NAMES, t.hat))
    q = rng.choice((f"Is the {ref.phrase} wearing a hat?", f"Does the {ref.phrase} have a hat?"))
    return QA(q, _yn(bool(t.hat)), "hat", "yes/no", (t.index,), (_yn(not t.hat),))


def q_same_color(scene: Scene, rng: Rng) -> QA | None:
    pairs = [c for c in scene.categories() if len(scene.of(c)) == 2]
    if not pairs:
        return None
    cat = rng.choice(pairs)
    a, b = scene.of(cat)
    want = a.colour == b.colour
    return QA(f"Are the {plural(cat)} the same color?", _yn(want), "same_color", "yes/no", (a.index, b.index),
              (_yn(not want),))


def q_scene(scene: Scene, rng: Rng) -> QA | None:
    if rng.chance(0.5):
        want = rng.chance(0.5)
        theme = scene.theme if want else rng.choice(_others(THEMES, scene.theme))
        return QA(f"Is this a {theme} scene?", _yn(want), "scene_verify", "yes/no", (), (_yn(not want),))
    q = rng.choice(("What type of scene is this?", "What kind of place is this?"))
    return QA(q, scene.theme, "scene", "other", (), _others(THEMES, scene.theme))


def q_which(scene: Scene, rng: Rng) -> QA | None:
    if len(scene.objects) < 2:
        return None
    a, b = rng.sample(scene.objects, 2)
    if a.category == b.category:
        return None
    rel = rng.choice(("to the left of", "above"))
    if not holds(scene, a, rel, b):
        a, b = b, a
    if not holds(scene, a, rel, b) or len(scene.of(a.category)) > 1 or len(scene.of(b.category)) > 1:
        return None
    side = "on the left" if rel == "to the left of" else "higher up"
    first, second = (a, b) if rng.chance(0.5) else (b, a)
    q = f"Which object is {side}, the {first.category} or the {second.category}?"
    return QA(q, a.category, "which", "other", (a.index, b.index), (b.category,))


FAMILIES: dict[str, Callable[[Scene, Rng], QA | None]] = {
    "color": q_color, "count": q_count, "exist": q_exist, "verify_color": q_verify_color,
    "category": q_category, "shape": q_shape, "where": q_where, "read": q_read, "relation": q_relation,
    "compare": q_compare, "hat": q_hat, "same_color": q_same_color, "scene": q_scene, "which": q_which,
}


def ask(scene: Scene, rng: Rng, weights: dict[str, float], tries: int = 12) -> QA | None:
    """One question from a family drawn by ``weights``; families that cannot ask about this scene
    are retried with another draw."""
    names = [n for n, w in weights.items() if w > 0]
    ws = [weights[n] for n in names]
    for _ in range(tries):
        qa = FAMILIES[rng.weighted(names, ws)](scene, rng)
        if qa is not None:
            return qa
    return None


def category_synonyms(name: str) -> tuple[str, ...]:
    """What people also call a category (VQA annotators' variation)."""
    return {
        "person": ("man", "woman", "human"), "car": ("vehicle", "auto"), "cup": ("mug",),
        "house": ("home", "building"), "sign": ("board", "signboard"), "flower": ("plant",),
        "circle": ("round", "oval"), "square": ("rectangle", "box"), "diamond": ("rhombus",),
        "ball": ("sphere",), "clock": ("watch",), "kite": ("toy",), "tree": ("plant",),
        "star": (), "heart": (), "triangle": (), "hexagon": ("polygon",),
    }.get(name, ())


assert set(BY_NAME) == set(CATEGORY_NAMES)

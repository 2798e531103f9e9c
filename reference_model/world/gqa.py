"""GQA testdev-balanced questions in the official format (``gqa/testdev_balanced_questions.json``).

One JSON object mapping question id → {imageId, question, answer, fullAnswer, isBalanced, entailed,
equivalent, types{structural, semantic, detailed}, groups{global, local}, semantic (the functional
program), semanticStr, annotations}; images ``gqa/images/<imageId>.jpg``.

Questions come in small groups about one fact (a colour, a relation, the place...): a query, a
verification and a choice that follow from each other list each other as ``entailed``, so GQA's
consistency metric (accuracy on the entailed questions of correctly answered ones) is measurable.
Structural types: query, verify, logical, choose, compare; semantic: obj, attr, cat, rel, global.
Yes/no answers are balanced 50/50 and every question is ``isBalanced`` (as in the real
testdev-balanced file); entailed ids always point inside the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .language import OPPOSITE, RELATIONS, Ref, clear_relations, holds, pick_ref, plural, referring
from .ontology import CATEGORY_NAMES, COLOUR_NAMES, THEMES
from .rng import Rng, derive, eval_scene_id
from .scene import Scene, SceneObject, SceneSpec, make_scene
from .sink import Sink

REL_WORD = {"to the left of": "left", "to the right of": "right", "above": "above", "below": "below",
            "in front of": "in front", "behind": "behind"}


@dataclass
class GQ:
    question: str
    answer: str
    full: str
    structural: str
    semantic: str
    detailed: str
    program: list[dict]
    global_group: str | None
    local_group: str
    objects: list[int] = field(default_factory=list)
    entails: tuple[int, ...] = ()  # positions, in its group, of the questions this one's answer settles


class _Ids:
    def __init__(self, image_no: int):
        self.base = 3000000 + image_no * 40

    def __call__(self, o: SceneObject) -> str:
        return str(self.base + o.index)


def _op(operation: str, argument: str, deps: list[int]) -> dict:
    return {"operation": operation, "dependencies": deps, "argument": argument}


def _select(scene: Scene, t: SceneObject, ref: Ref, oid: _Ids) -> list[dict]:
    """The program that finds ``t`` the way ``ref`` names it."""
    if ref.kind == "relation":
        a = scene.objects[ref.anchor]
        ops = _select(scene, a, ref.anchor_ref or Ref(a.category, "category"), oid)
        return ops + [_op("relate", f"{t.category},{ref.rel},s ({oid(t)})", [len(ops) - 1])]
    same = ",".join(oid(o) for o in scene.of(t.category))
    ops = [_op("select", f"{t.category} ({same})", [])]
    if ref.kind == "colour":
        ops.append(_op("filter color", ref.attr, [0]))
    elif ref.kind in ("location",):
        ops.append(_op("filter hposition" if ref.attr in ("left", "right") else "filter vposition", ref.attr, [0]))
    elif ref.kind in ("hat", "text", "size"):
        ops.append(_op(f"filter {ref.kind}", ref.attr, [0]))
    return ops


def _attr_group(scene: Scene, rng: Rng, oid: _Ids) -> list[GQ]:
    t = rng.choice(scene.objects)
    ref = pick_ref(rng, referring(scene, t), colour=False)
    if ref is None:
        return []
    sel = _select(scene, t, ref, oid)
    n = len(sel)
    name = ref.phrase
    other = rng.choice([c for c in COLOUR_NAMES if c != t.colour])
    asked = t.colour if rng.chance(0.5) else other
    yes = asked == t.colour
    c1, c2 = rng.shuffled([t.colour, other])
    local = f"10q-{t.category}_color"
    group = [
        GQ(f"What color is the {name}?", t.colour, f"The {name} is {t.colour}.", "query", "attr", "queryAttr",
           sel + [_op("query", "color", [n - 1])], "color", local, objects=[t.index]),
        GQ(f"Is the {name} {asked}?", "yes" if yes else "no",
           f"{'Yes' if yes else 'No'}, the {name} is {t.colour}.", "verify", "attr", "verifyAttr",
           sel + [_op("verify color", asked, [n - 1])], None, f"06-{t.category}_{asked}", objects=[t.index]),
        GQ(f"Is the {name} {c1} or {c2}?", t.colour, f"The {name} is {t.colour}.", "choose", "attr", "chooseAttr",
           sel + [_op("choose color", f"{c1}|{c2}", [n - 1])], None, local, objects=[t.index]),
    ]
    return _entail(group, {0: (1, 2), 1: (0, 2) if yes else (), 2: (0, 1)})


def _entail(group: list[GQ], rules: dict[int, tuple[int, ...]]) -> list[GQ]:
    for k, targets in rules.items():
        group[k].entails = targets
    return group


def _mutual(group: list[GQ]) -> list[GQ]:
    return _entail(group, {k: tuple(j for j in range(len(group)) if j != k) for k in range(len(group))})


def _rel_group(scene: Scene, rng: Rng, oid: _Ids) -> list[GQ]:
    if len(scene.objects) < 2:
        return []
    t, a = rng.sample(scene.objects, 2)
    if t.category == a.category:
        return []
    rels = [r for r in clear_relations(scene, t, a)]
    aref = pick_ref(rng, referring(scene, a), kinds=("category", "colour"))
    tref = pick_ref(rng, referring(scene, t), kinds=("category", "colour"))
    if not rels or aref is None or tref is None:
        return []
    rel = rng.choice(rels)
    sel_a = _select(scene, a, aref, oid)
    n = len(sel_a)
    out = []
    subjects = [o for o in scene.objects if o.index != a.index and holds(scene, o, rel, a)]
    if subjects == [t]:
        out.append(GQ(f"What is {rel} the {aref.phrase}?", t.category, f"The {t.category} is {rel} the {aref.phrase}.",
                      "query", "rel", "relS", sel_a + [_op("relate", f"_,{rel},s ({oid(t)})", [n - 1]),
                                                       _op("query", "name", [n])],
                      f"{rel.split()[-2] if ' ' in rel else rel}", f"14-{a.category}_{rel}", objects=[t.index, a.index]))
    out.append(GQ(f"Is there a {t.category} {rel} the {aref.phrase}?", "yes",
                  f"Yes, there is a {t.category} {rel} the {aref.phrase}.", "verify", "rel", "existRelS",
                  sel_a + [_op("relate", f"{t.category},{rel},s ({oid(t)})", [n - 1]), _op("exist", "?", [n])],
                  None, f"13-{a.category}_{t.category}", objects=[t.index, a.index]))
    first, second = rng.shuffled([rel, OPPOSITE[rel]])
    word = REL_WORD[rel]
    sel_t = _select(scene, t, tref, oid)
    out.append(GQ(f"Is the {tref.phrase} {first} or {second} the {aref.phrase}?", word,
                  f"The {tref.phrase} is {rel} the {aref.phrase}.", "choose", "rel", "chooseRel",
                  sel_t + sel_a + [_op("choose rel", f"{first}|{second}", [len(sel_t) - 1, len(sel_t) + n - 1])],
                  None, f"15-{t.category}_{a.category}", objects=[t.index, a.index]))
    return _mutual(out)


def _neg_rel(scene: Scene, rng: Rng, oid: _Ids) -> list[GQ]:
    """A 'no' existence-with-relation question (its own group: nothing follows from it)."""
    a = rng.choice(scene.objects)
    aref = pick_ref(rng, referring(scene, a), kinds=("category", "colour"))
    if aref is None:
        return []
    rel = rng.choice(RELATIONS[:4])
    cat = rng.choice([c for c in CATEGORY_NAMES if c != a.category
                      and not any(holds(scene, o, rel, a) for o in scene.of(c))])
    sel = _select(scene, a, aref, oid)
    n = len(sel)
    return [GQ(f"Is there a {cat} {rel} the {aref.phrase}?", "no", f"No, there is no {cat} {rel} the {aref.phrase}.",
               "verify", "rel", "existRelS", sel + [_op("relate", f"{cat},{rel},s (-)", [n - 1]), _op("exist", "?", [n])],
               None, f"13-{a.category}_{cat}", objects=[a.index])]


def _logic_group(scene: Scene, rng: Rng, oid: _Ids) -> list[GQ]:
    x, y = rng.sample(list(CATEGORY_NAMES), 2)
    hx, hy = bool(scene.of(x)), bool(scene.of(y))
    px, py = plural(x), plural(y)
    ops = [_op("select", x, []), _op("exist", "?", [0]), _op("select", y, []), _op("exist", "?", [2])]
    both = hx and hy
    either = hx or hy
    out = [
        GQ(f"Are there both {px} and {py} in this picture?", "yes" if both else "no",
           f"{'Yes' if both else 'No'}, there are {'both' if both else 'not both'} {px} and {py}.", "logical", "obj",
           "logicAnd", ops + [_op("and", "", [1, 3])], None, f"and-{x}_{y}"),
        GQ(f"Are there {px} or {py}?", "yes" if either else "no",
           f"{'Yes' if either else 'No'}, there are {'' if either else 'no '}{px} or {py}.", "logical", "obj", "logicOr",
           ops + [_op("or", "", [1, 3])], None, f"or-{x}_{y}"),
        GQ(f"Are there any {px}?", "yes" if hx else "no", f"{'Yes' if hx else 'No'}, there are {'' if hx else 'no '}{px}.",
           "verify", "obj", "exist", ops[:2], None, f"exist-{x}"),
    ]
    # and=yes settles or and exist; exist=yes settles or; exist=no settles and; or=no settles both
    return _entail(out, {0: (1, 2) if both else (), 1: () if either else (0, 2), 2: (1,) if hx else (0,)})


def _compare_group(scene: Scene, rng: Rng, oid: _Ids) -> list[GQ]:
    if len(scene.objects) < 2:
        return []
    a, b = rng.sample(scene.objects, 2)
    ra = pick_ref(rng, referring(scene, a), kinds=("category", "colour"), colour=False)
    rb = pick_ref(rng, referring(scene, b), kinds=("category", "colour"), colour=False)
    if ra is None or rb is None or a.category == b.category:
        return []
    sa, sb = _select(scene, a, ra, oid), _select(scene, b, rb, oid)
    same = a.colour == b.colour
    out = [GQ(f"Do the {ra.phrase} and the {rb.phrase} have the same color?", "yes" if same else "no",
              f"{'Yes' if same else 'No'}, the {ra.phrase} and the {rb.phrase} are {'the same' if same else 'different'} color.",
              "compare", "attr", "sameColor", sa + sb + [_op("same color", "", [len(sa) - 1, len(sa) + len(sb) - 1])],
              None, f"same-{a.category}_{b.category}", objects=[a.index, b.index])]
    big, small = (a, b) if a.full_area >= b.full_area else (b, a)
    if big.full_area >= 1.6 * small.full_area:
        out.append(GQ(f"Which is bigger, the {ra.phrase} or the {rb.phrase}?", big.category,
                      f"The {big.category} is bigger than the {small.category}.", "compare", "attr", "compare",
                      sa + sb + [_op("choose bigger", "", [len(sa) - 1, len(sa) + len(sb) - 1])], None,
                      f"bigger-{a.category}_{b.category}", objects=[a.index, b.index]))
    return out


def _global_group(scene: Scene, rng: Rng, oid: _Ids) -> list[GQ]:
    other = rng.choice([t for t in THEMES if t != scene.theme])
    first, second = rng.shuffled([scene.theme, other])
    group = [
        GQ("Which place is it?", scene.theme, f"It is a {scene.theme}.", "query", "global", "placeQuery",
           [_op("select", "scene", []), _op("query", "place", [0])], "place", "place"),
        GQ(f"Is it a {first} or a {second}?", scene.theme, f"It is a {scene.theme}.", "choose", "global",
           "placeChoose", [_op("select", "scene", []), _op("choose place", f"{first}|{second}", [0])], None, "place"),
    ]
    return _mutual(group)


def _category_group(scene: Scene, rng: Rng, oid: _Ids) -> list[GQ]:
    t = rng.choice(scene.objects)
    if [o.index for o in scene.objects if o.colour == t.colour] != [t.index]:
        return []
    ops = [_op("select", f"object ({oid(t)})", []), _op("filter color", t.colour, [0])]
    other = rng.choice([c for c in CATEGORY_NAMES if c != t.category])
    asked = t.category if rng.chance(0.5) else other
    yes = asked == t.category
    group = [
        GQ(f"What kind of object is {t.colour}?", t.category, f"The {t.colour} object is a {t.category}.", "query", "cat",
           "categoryAttr", ops + [_op("query", "name", [1])], "object", f"cat-{t.colour}", objects=[t.index]),
        GQ(f"Is the {t.colour} object a {asked}?", "yes" if yes else "no",
           f"{'Yes' if yes else 'No'}, the {t.colour} object is a {t.category}.", "verify", "cat", "verifyCategory",
           ops + [_op("verify name", asked, [1])], None, f"cat-{t.colour}", objects=[t.index]),
    ]
    return _entail(group, {0: (1,), 1: (0,) if yes else ()})


GROUPS: dict[str, Callable[[Scene, Rng, _Ids], list[GQ]]] = {
    "attr": _attr_group, "rel": _rel_group, "neg_rel": _neg_rel, "logic": _logic_group,
    "compare": _compare_group, "global": _global_group, "category": _category_group,
}
GROUP_WEIGHTS = {"attr": 2.0, "rel": 2.0, "neg_rel": 0.8, "logic": 1.0, "compare": 1.0, "global": 0.6,
                 "category": 1.0}


def _semantic_str(program: list[dict]) -> str:
    parts = []
    for op in program:
        deps = f" {op['dependencies']}" if op["dependencies"] else ""
        parts.append(f"{op['operation']}: {op['argument']}{deps}")
    return "->".join(parts)


def write_gqa(sink: Sink, n_images: int, seed: int, tick: Callable[[int, int], None]) -> dict[str, int]:
    out: dict[str, dict] = {}
    balance = [0, 0]
    names, weights = list(GROUP_WEIGHTS), list(GROUP_WEIGHTS.values())
    for i in range(n_images):
        scene = make_scene(eval_scene_id(seed, "gqa", i), SceneSpec(min_categories=2))
        image_id = f"n{500000 + 17 * i}"
        sink.image(f"images/{image_id}.jpg", scene.image)
        rng = Rng(derive("gqa-questions", seed, i))
        oid = _Ids(i)
        chosen: list[list[GQ]] = []
        for _ in range(12):
            if sum(len(g) for g in chosen) >= 4:
                break
            g = GROUPS[rng.weighted(names, weights)](scene, rng, oid)
            asked = {x.question for grp in chosen for x in grp}
            if g and not any(q.question in asked for q in g) and _keeps_balance(g, balance):
                chosen.append(g)
        for g in chosen:
            ids = [str(200000000 + len(out) + k) for k in range(len(g))]
            for k, q in enumerate(g):
                out[ids[k]] = _record(q, image_id, ids[k], [ids[j] for j in q.entails], oid, scene)
        tick(i + 1, n_images)
    sink.json("testdev_balanced_questions.json", out)
    return {"testdev_balanced": len(out)}


def _keeps_balance(g: list[GQ], balance: list[int]) -> bool:
    yes = sum(q.answer == "yes" for q in g)
    no = sum(q.answer == "no" for q in g)
    if abs((balance[0] + yes) - (balance[1] + no)) > max(abs(balance[0] - balance[1]), 2):
        return False
    balance[0] += yes
    balance[1] += no
    return True


def _record(q: GQ, image_id: str, qid: str, entailed: list[str], oid: _Ids, scene: Scene) -> dict:
    noun_pos = {str(k): oid(scene.objects[o]) for k, o in zip(range(2, 2 + len(q.objects)), q.objects)}
    return {
        "semantic": q.program,
        "entailed": entailed,
        "equivalent": [qid],
        "question": q.question,
        "imageId": image_id,
        "isBalanced": True,
        "groups": {"global": q.global_group, "local": q.local_group},
        "answer": q.answer,
        "semanticStr": _semantic_str(q.program),
        "annotations": {"answer": {}, "question": noun_pos, "fullAnswer": {"1": noun_pos.get("2", "")} if noun_pos else {}},
        "types": {"detailed": q.detailed, "semantic": q.semantic, "structural": q.structural},
        "fullAnswer": q.full,
    }

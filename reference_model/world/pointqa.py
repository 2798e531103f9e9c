"""PointQA: PixMo-Points-eval-style pointing plus Point-and-Ask's LocalQA / LookTwiceQA (``pointqa/``).

``pixmo_points_eval.jsonl`` (split "pointing"): one record per line with image, size, ``label`` (the
object phrase), ``question``, ``points`` (a pixel centre inside each target), ``masks`` (COCO RLE,
or exact polygons for one record in four, so loaders meet both forms), ``boxes`` (pixel extents
``[x1, y1, x2, y2]``), ``count`` and ``kind``: single (one unique target), multi (two or more),
zero (a phrase naming nothing in the image: an absent category, or a present one in an absent
colour) and count ("How many ... are there?", 0-5 targets, drawn before the scene).

``pointqa_local_test.json`` / ``pointqa_twice_test.json`` (splits "local", "looktwice"): questions
that carry a point on an object; local ones ask about that object, look-twice ones about how many
like it the image holds. ``answers`` lists every accepted spelling.
"""

from __future__ import annotations

from collections.abc import Callable

from .annotators import NUMBER_WORDS
from .formats import mask_polygons, rle_encode
from .language import coloured_plural, pick_ref, plural, referring
from .ontology import CATEGORY_NAMES, COLOUR_NAMES, SHAPES
from .questions import category_synonyms
from .rng import Rng, derive, eval_scene_id
from .scene import Scene, SceneObject, SceneSpec, make_scene
from .sink import Sink

KIND_CYCLE = ("single", "multi", "zero", "count", "single", "multi", "single", "count", "multi", "zero",
              "single", "multi", "count", "single", "multi", "single", "count", "zero", "single", "multi")


def _pointing_scene(seed: int, i: int, kind: str, rng: Rng) -> tuple[Scene, list[SceneObject], str]:
    """(scene, targets, label) for one pointing record of ``kind``."""
    for attempt in range(40):
        sid = eval_scene_id(seed, "pointqa", i, attempt)
        if kind in ("multi", "count"):
            cat = rng.choice([c for c in CATEGORY_NAMES if c != "sign"])
            n = rng.randint(2, 4) if kind == "multi" else rng.weighted((0, 1, 2, 3, 4, 5), (1, 1, 1.2, 1.2, 1, 0.8))
            scene = make_scene(sid, SceneSpec(require={cat: n} if n else {}, n_objects=(max(3, n), 9)))
            objs = scene.of(cat)
            if kind == "count" or rng.chance(0.6):
                return scene, objs, plural(cat)
            colour = rng.choice([o.colour for o in objs])
            sel = [o for o in objs if o.colour == colour]
            if len(sel) >= 2:
                return scene, sel, coloured_plural(cat, colour)
            return scene, objs, plural(cat)
        scene = make_scene(sid)
        if kind == "single":
            t = rng.choice(scene.objects)
            ref = pick_ref(rng, referring(scene, t))
            if ref is not None:
                return scene, [t], ref.phrase
        else:  # zero
            present = scene.categories()
            if rng.chance(0.5):
                return scene, [], plural(rng.choice([c for c in CATEGORY_NAMES if c not in present]))
            cat = rng.choice(present)
            colours = [c for c in COLOUR_NAMES if all(o.colour != c for o in scene.of(cat))]
            return scene, [], coloured_plural(cat, rng.choice(colours))
    raise AssertionError("no pointing target found")


def _record(i: int, kind: str, scene: Scene, targets: list[SceneObject], label: str, polygons: bool) -> dict:
    targets = sorted(targets, key=lambda o: (o.point[0], o.point[1]))
    question = f"How many {label} are there?" if kind == "count" else f"Point to the {label}."
    return {
        "id": f"pixmo-eval-{i:05d}", "image": f"images/points_{i:05d}.jpg",
        "image_width": scene.width, "image_height": scene.height, "label": label, "question": question,
        "points": [[o.point[0], o.point[1]] for o in targets],
        "masks": [mask_polygons(o.mask) if polygons else rle_encode(o.mask) for o in targets],
        "boxes": [[float(v) for v in o.box] for o in targets], "count": len(targets), "kind": kind,
    }


def _local(scene: Scene, t: SceneObject, rng: Rng) -> tuple[str, list[str]]:
    r = rng.random()
    if r < 0.45:
        return "What color is this object?", [t.colour] + (["grey"] if t.colour == "gray" else [])
    if r < 0.65 and t.category in SHAPES:
        return "What shape is this?", [t.category]
    return "What is this?", [t.category, *category_synonyms(t.category)]


TWICE_COLOUR = "How many objects of this color are there?"
TWICE_KIND = "How many of these are there?"


def _twice(seed: int, k: int, rng: Rng) -> tuple[Scene, SceneObject, str, list[str]]:
    """A look-twice question whose answer, a count of 1-4, is drawn before the scene (uniformly),
    so it cannot be guessed from the question."""
    want = rng.randint(1, 4)
    by_colour = rng.chance(0.5)
    for attempt in range(60):
        cat = rng.choice([c for c in CATEGORY_NAMES if c != "sign"])
        colour = rng.choice(COLOUR_NAMES)
        spec = (SceneSpec(colour_count=(colour, want), n_objects=(max(4, want), 9)) if by_colour
                else SceneSpec(require={cat: want}, n_objects=(max(4, want), 9)))
        scene = make_scene(eval_scene_id(seed, "pointqa", "twice", k, attempt), spec)
        if by_colour:
            fits = [o for o in scene.objects if sum(p.colour == o.colour for p in scene.objects) == want]
        else:
            fits = [o for o in scene.objects if len(scene.of(o.category)) == want]
        if fits:
            return scene, rng.choice(fits), TWICE_COLOUR if by_colour else TWICE_KIND, [str(want), NUMBER_WORDS[want]]
    raise AssertionError("no look-twice target found")


def _point_questions(sink: Sink, seed: int, name: str, n: int, tick: Callable[[], None]) -> list[dict]:
    rows = []
    for k in range(n):
        rng = Rng(derive("pointqa", name, seed, k))
        if name == "twice":
            scene, t, question, answers = _twice(seed, k, rng)
        else:
            scene = make_scene(eval_scene_id(seed, "pointqa", name, k))
            t = rng.choice(scene.objects)
            question, answers = _local(scene, t, rng)
        rel = f"images/{name}_{k:05d}.jpg"
        sink.image(rel, scene.image)
        rows.append({"question_id": 1000 + k, "image": rel, "image_width": scene.width,
                     "image_height": scene.height, "question": question, "point": [t.point[0], t.point[1]],
                     "answer": answers[0], "answers": answers})
        tick()
    return rows


def write_pointqa(sink: Sink, n_points: int, seed: int, tick: Callable[[int, int], None]) -> dict[str, int]:
    n_side = n_points // 2
    total = n_points + 2 * n_side
    done = [0]

    def step() -> None:
        done[0] += 1
        tick(done[0], total)

    records = []
    for i in range(n_points):
        rng = Rng(derive("pointqa-pointing", seed, i))
        kind = KIND_CYCLE[i % len(KIND_CYCLE)]
        scene, targets, label = _pointing_scene(seed, i, kind, rng)
        rec = _record(i, kind, scene, targets, label, polygons=i % 4 == 3)
        sink.image(rec["image"], scene.image)
        records.append(rec)
        step()
    sink.jsonl("pixmo_points_eval.jsonl", records)
    local = _point_questions(sink, seed, "local", n_side, step)
    twice = _point_questions(sink, seed, "twice", n_side, step)
    sink.json("pointqa_local_test.json", local)
    sink.json("pointqa_twice_test.json", twice)
    return {"pointing": len(records), "local": len(local), "looktwice": len(twice)}

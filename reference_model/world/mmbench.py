"""MMBench dev (``mmbench/MMBench_DEV_EN.tsv``) as VLMEvalKit writes it, with circular copies.

Columns: index, question, hint, A, B, C, D, answer, category, image, source, l2-category, comment,
split. Base rows carry the image as base64 JPEG; for a question with n options, copies
k = 1..n-1 have index ``base + k * 1000000``, the base row's index as their image, and the options
rotated as VLMEvalKit's circular tool rotates them (copy k shows at letter j the base option at
letter (j + k) mod n; the answer letter moves accordingly).

Synthetic abilities map onto MMBench's categories and l2-categories (`ABILITIES`); options are
shuffled so the answer letter is uniform, and blind guessing scores about zero under CircularEval.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

from .language import REGIONS, clear_relations, holds, pick_ref, plural, referring, region
from .ontology import BY_NAME, CATEGORIES, CATEGORY_NAMES, COLOUR_NAMES, SIGN_WORDS, THEMES
from .rng import Rng, derive, eval_scene_id
from .scene import Scene, SceneSpec, make_scene
from .sink import Sink

COLUMNS = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
           "l2-category", "comment", "split")
CIRCULAR_OFFSET = 1_000_000
THEME_TEXT = {"street": "a street", "park": "a park", "kitchen": "a kitchen", "gallery": "a display of shapes"}
HINTS = ("The picture was drawn by a computer program.", "Look carefully at the whole picture.",
         "Each object in the picture has a single main color.", "Answer based on what you can see.")


@dataclass(frozen=True)
class MCQ:
    question: str
    answer: str
    distractors: tuple[str, ...]  # at least one


def _pick(rng: Rng, pool: list[str], k: int) -> tuple[str, ...]:
    return tuple(rng.sample(pool, min(k, len(pool))))


def _scene_q(s: Scene, rng: Rng) -> MCQ | None:
    others = [THEME_TEXT[t] for t in THEMES if t != s.theme]
    return MCQ("Which kind of place does this image show?", THEME_TEXT[s.theme], _pick(rng, others, 3))


def _topic_q(s: Scene, rng: Rng) -> MCQ | None:
    counts = sorted(((len(s.of(c)), c) for c in s.categories()), reverse=True)
    if len(counts) > 1 and counts[0][0] == counts[1][0]:
        return None
    top = counts[0][1]
    pool = [plural(c) for c in CATEGORY_NAMES if not s.of(c)]
    return MCQ("Which kind of object appears most often in this image?", plural(top), _pick(rng, pool, 3))


def _localization_q(s: Scene, rng: Rng) -> MCQ | None:
    t = rng.choice(s.objects)
    ref = pick_ref(rng, referring(s, t), location=False)
    if ref is None:
        return None
    r = region(s, t)
    return MCQ(f"Where is the {ref.phrase} in the image?", r, _pick(rng, [x for x in REGIONS if x != r], 3))


def _attribute_q(s: Scene, rng: Rng) -> MCQ | None:
    t = rng.choice(s.objects)
    ref = pick_ref(rng, referring(s, t), colour=False)
    if ref is None:
        return None
    return MCQ(f"What is the main color of the {ref.phrase}?", t.colour,
               _pick(rng, [c for c in COLOUR_NAMES if c != t.colour], 3))


def _ocr_q(s: Scene, rng: Rng) -> MCQ | None:
    signs = s.of("sign")
    if not signs:
        return None
    t = rng.choice(signs)
    ref = pick_ref(rng, [r for r in referring(s, t) if r.kind != "text"])
    if ref is None:
        return None
    pool = [w for w in SIGN_WORDS if w != t.text] if not t.text.isdigit() else [
        str(n) for n in range(1, 100) if str(n) != t.text]
    return MCQ(f"What is written on the {ref.phrase}?", t.text, _pick(rng, pool, 3))


def _spatial_q(s: Scene, rng: Rng) -> MCQ | None:
    a = rng.choice(s.objects)
    aref = pick_ref(rng, referring(s, a), kinds=("category", "colour"))
    if aref is None:
        return None
    rel = rng.choice(("to the left of", "to the right of", "above", "below"))
    subj = [o for o in s.objects if o.index != a.index and holds(s, o, rel, a)]
    if len({o.category for o in subj}) != 1 or len(subj) != 1:
        return None
    t = subj[0]
    pool = [c for c in CATEGORY_NAMES if c != t.category and c != a.category
            and not any(holds(s, o, rel, a) for o in s.of(c))]
    return MCQ(f"Which object is {rel} the {aref.phrase}?", f"the {t.category}",
               tuple(f"the {c}" for c in _pick(rng, pool, 3)))


def _comparison_q(s: Scene, rng: Rng) -> MCQ | None:
    if len(s.objects) < 2:
        return None
    a, b = rng.sample(s.objects, 2)
    ra = pick_ref(rng, referring(s, a), kinds=("category", "colour"))
    rb = pick_ref(rng, referring(s, b), kinds=("category", "colour"))
    if ra is None or rb is None:
        return None
    big, small = (a, b) if a.full_area >= b.full_area else (b, a)
    if big.full_area < 1.6 * small.full_area:
        same = a.colour == b.colour
        return MCQ(f"Do the {ra.phrase} and the {rb.phrase} have the same color?", "yes" if same else "no",
                   ("no" if same else "yes",))
    name = {a.index: ra.phrase, b.index: rb.phrase}
    return MCQ("Which of these two objects is bigger in the image?", f"the {name[big.index]}",
               (f"the {name[small.index]}",))


def _function_q(s: Scene, rng: Rng) -> MCQ | None:
    with_use = [c for c in s.categories() if BY_NAME[c].use]
    if not with_use:
        return None
    cat = rng.choice(with_use)
    use = BY_NAME[cat].use
    pool = [c.name for c in CATEGORIES if c.use and c.use != use and not s.of(c.name)]
    return MCQ(f"Which object in the image can be used for {use}?", f"the {cat}",
               tuple(f"the {c}" for c in _pick(rng, pool, 3)))


def _physical_q(s: Scene, rng: Rng) -> MCQ | None:
    behind = [o for o in s.objects if len(o.occluded_by) == 1]
    if not behind:
        return None
    b = rng.choice(behind)
    front = s.objects[b.occluded_by[0]]
    bref = pick_ref(rng, referring(s, b), kinds=("category", "colour"))
    if bref is None or front.category == b.category:
        return None
    pool = [c for c in CATEGORY_NAMES if c not in (front.category, b.category)]
    return MCQ(f"Which object is partly covering the {bref.phrase}?", f"the {front.category}",
               tuple(f"the {c}" for c in _pick(rng, pool, 3)))


def _structured_q(s: Scene, rng: Rng) -> MCQ | None:
    signs = s.of("sign")
    if not signs:
        return None
    t = rng.choice(signs)
    anchors = [o for o in s.objects if o.category != "sign" and clear_relations(s, t, o)[:1]]
    if not anchors:
        return None
    a = rng.choice(anchors)
    rel = clear_relations(s, t, a)[0]
    if any(holds(s, o, rel, a) for o in signs if o.index != t.index):
        return None
    aref = pick_ref(rng, referring(s, a), kinds=("category", "colour"))
    if aref is None:
        return None
    others = [o.text for o in signs if o.index != t.index]
    pool = others + [w for w in SIGN_WORDS if w != t.text and w not in others]
    return MCQ(f"What does the sign {rel} the {aref.phrase} say?", t.text,
               tuple(others[:1]) + _pick(rng, pool[len(others[:1]):], 3 - len(others[:1])))


ABILITIES: dict[str, tuple[str, Callable[[Scene, Rng], MCQ | None], SceneSpec]] = {
    "image_scene": ("coarse_perception", _scene_q, SceneSpec()),
    "image_topic": ("coarse_perception", _topic_q, SceneSpec()),
    "object_localization": ("finegrained_perception (instance-level)", _localization_q, SceneSpec()),
    "attribute_recognition": ("finegrained_perception (instance-level)", _attribute_q, SceneSpec()),
    "OCR": ("finegrained_perception (instance-level)", _ocr_q, SceneSpec(sign=True)),
    "spatial_relationship": ("finegrained_perception (cross-instance)", _spatial_q, SceneSpec(min_categories=3)),
    "attribute_comparison": ("finegrained_perception (cross-instance)", _comparison_q, SceneSpec()),
    "function_reasoning": ("attribute_reasoning", _function_q, SceneSpec(theme="kitchen")),
    "physical_relation": ("relation_reasoning", _physical_q, SceneSpec(n_objects=(6, 9))),
    "structuralized_imagetext_understanding": ("logic_reasoning", _structured_q,
                                               SceneSpec(sign=True, min_categories=3)),
}


def _rows(index: int, mcq: MCQ, category: str, l2: str, image_b64: str, hint: str,
          rng: Rng) -> list[dict[str, str]]:
    n = min(4, 1 + len(mcq.distractors))
    options = rng.shuffled([mcq.answer] + list(mcq.distractors[:n - 1]))
    answer = options.index(mcq.answer)
    letters = "ABCD"
    rows = []
    for k in range(n):
        row = {c: "" for c in COLUMNS}
        for j in range(n):
            row[letters[j]] = options[(j + k) % n]
        row.update({"index": str(index + k * CIRCULAR_OFFSET), "question": mcq.question, "hint": hint,
                    "answer": letters[(answer - k) % n], "category": category, "l2-category": l2,
                    "source": "molmo-eval world", "split": "dev", "image": image_b64 if k == 0 else str(index)})
        rows.append(row)
    return rows


def _tsv(rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([r[c] for c in COLUMNS])
    return buf.getvalue().encode("utf-8")


def write_mmbench(sink: Sink, n_questions: int, seed: int, tick: Callable[[int, int], None]) -> dict[str, int]:
    names = list(ABILITIES)
    base: list[list[dict[str, str]]] = []
    for i in range(n_questions):
        rng = Rng(derive("mmbench", seed, i))
        category = names[i % len(names)]
        l2, make_q, spec = ABILITIES[category]
        for attempt in range(50):
            scene = make_scene(eval_scene_id(seed, "mmbench", i, attempt), spec)
            mcq = make_q(scene, rng)
            if mcq is not None and mcq.distractors:
                break
        else:
            raise AssertionError(f"no {category} question after 50 scenes")
        b64 = base64.b64encode(sink.encode_image(scene.image)).decode("ascii")
        hint = rng.choice(HINTS) if rng.chance(0.3) else ""
        base.append(_rows(1000 + i, mcq, category, l2, b64, hint, rng))
        tick(i + 1, n_questions)
    # base rows first, then each rotation, as VLMEvalKit's circular tool concatenates them
    rows = [g[k] for k in range(4) for g in base if k < len(g)]
    canonical = [dict(r, image="<image>") if not r["image"].isdigit() else r for r in rows]
    sink.annotation("MMBench_DEV_EN.tsv", _tsv(rows), canonical=_tsv(canonical))
    return {"dev_en": len(rows)}


"""Training streams for the reference model, mirroring PixMo's three kinds of data.

    caption_stream  PixMo-Cap    dense captions with colours, sizes, places, counts, words on signs
    ask_stream      PixMo-Ask    short answers: what / where / how many / which / is there / reading,
                                 yes/no, multiple choice, and the benchmarks' prompt phrasings
    point_stream    PixMo-Point  "point to ...": one target, several, none ("There are none."),
                                 counting by pointing, and questions that carry a point

Each stream is infinite, seeded and computed on the fly (nothing stored): example ``i`` of a
stream depends only on (seed, stream, i), so ``start``/``step`` shard it over data-loader workers
and a resumed run continues exactly. Scenes come from the training seed space (`rng.train_scene_id`),
disjoint from every evaluation split. Points are written in the reference model's syntax
``<point> <x_k> <y_k>`` with ``k = floor(100 * x / W)`` clipped to 0..99, several points separated by
spaces, ordered left to right (then top to bottom).

Default mixture (`DEFAULT_MIXTURE`, used when the trainer gives none): cap 0.2, ask 0.5, point 0.3.
Within ask (`ASK_SOURCES`): VQA-style families 0.6 (weighted by `ASK_WEIGHTS`), GQA-style groups 0.25,
MMBench-style multiple choice 0.15; within point (`POINT_KINDS`): single 0.4, multi 0.25, none 0.1,
count 0.15, point-and-ask 0.1. The generators are the ones that write the evaluation splits, applied
to training scenes: like training on a benchmark's train split, never on its evaluation images.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import count

import numpy as np

from .language import (
    Ref,
    caption,
    coloured_plural,
    pick_ref,
    plural,
    referring,
)
from .ontology import CATEGORY_NAMES, COLOUR_NAMES
from .questions import QA, ask
from .rng import Rng, derive, train_scene_id
from .scene import Scene, SceneObject, make_scene

Point = tuple[float, float]

DEFAULT_MIXTURE: dict[str, float] = {"cap": 0.2, "ask": 0.5, "point": 0.3}
ASK_WEIGHTS: dict[str, float] = {
    "color": 1.2, "count": 1.2, "exist": 1.2, "verify_color": 0.6, "category": 0.8, "shape": 0.5,
    "where": 0.8, "read": 1.2, "relation": 0.8, "compare": 0.5, "hat": 0.4, "same_color": 0.1,
    "scene": 0.4, "which": 0.5,
}
POINT_KINDS: dict[str, float] = {"single": 0.4, "multi": 0.25, "none": 0.1, "count": 0.15, "ask": 0.1}

CAPTION_PROMPTS = ("Describe this image.", "Describe this image in detail.", "Write a detailed caption.",
                   "What is in this picture?", "Caption this image.", "Give a detailed description of the image.")
VQA_SUFFIX = "Answer the question using a single word or phrase."
MC_SUFFIX = "Answer with the option's letter from the given choices directly."
POINT_SUFFIX = "Point to each one; if there is none, say so."
NONE_ANSWER = "There are none."


@dataclass(frozen=True, eq=False)
class Example:
    """One training example: an image, what the model reads, and what it should write."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    prompt: str
    answer: str
    kind: str  # "cap", "ask/<family>", "point/<kind>"
    points: tuple[Point, ...] = ()  # target points in pixels (point examples)
    scene_id: int = 0


# --- points in the model's syntax ----------------------------------------------------------------

def point_bin(v: float, size: int) -> int:
    return min(99, max(0, math.floor(100 * v / size)))


def point_text(points: tuple[Point, ...] | list[Point], width: int, height: int) -> str:
    """``<point> <x_k> <y_k>`` per point, left to right, separated by spaces."""
    ordered = sorted(points, key=lambda p: (p[0], p[1]))
    return " ".join(f"<point> <x_{point_bin(x, width)}> <y_{point_bin(y, height)}>" for x, y in ordered)


def point_tokens() -> tuple[str, ...]:
    return ("<point>",) + tuple(f"<x_{k}>" for k in range(100)) + tuple(f"<y_{k}>" for k in range(100))


# --- streams -----------------------------------------------------------------------------------------

def _scenes(seed: int, stream: str, start: int, step: int, pool: int = 0) -> Iterator[tuple[int, Scene, Rng]]:
    """(position, scene, rng of its examples). With ``pool`` > 0 the stream cycles through that many
    scenes, and each pass over them asks new questions (the rng is salted by the pass number), as
    Molmo asks many questions of one image: images, and their encoder features, are reused."""
    for i in count(start, step):
        rnd, k = divmod(i, pool) if pool else (0, 0)
        sid = train_scene_id(seed, stream, k if pool else i)
        yield i, make_scene(sid), Rng(derive("examples", sid, rnd) if rnd else derive("examples", sid))


def caption_stream(seed: int = 0, *, start: int = 0, step: int = 1, pool: int = 0) -> Iterator[Example]:
    """PixMo-Cap: one dense caption per scene."""
    for _, scene, rng in _scenes(seed, "cap", start, step, pool):
        yield from caption_examples(scene, rng)


def ask_stream(seed: int = 0, *, start: int = 0, step: int = 1, per_scene: int = 4, pool: int = 0
               ) -> Iterator[Example]:
    """PixMo-Ask: ``per_scene`` question-answer pairs per scene: VQA-style families in plain,
    "single word" and yes/no phrasings, GQA-style compositional questions, and MMBench-style
    multiple choice (see `ASK_SOURCES`)."""
    for _, scene, rng in _scenes(seed, "ask", start, step, pool):
        yield from ask_examples(scene, rng, per_scene)


def caption_examples(scene: Scene, rng: Rng) -> list[Example]:
    return [Example(scene.image, rng.choice(CAPTION_PROMPTS), caption(scene, rng), "cap", (), scene.scene_id)]


def ask_examples(scene: Scene, rng: Rng, per_scene: int = 4) -> list[Example]:
    sources, weights = list(ASK_SOURCES), list(ASK_SOURCES.values())
    out = []
    for _ in range(per_scene):
        made = _ASK_MAKERS[rng.weighted(sources, weights)](scene, rng)
        if made is not None:
            prompt, answer, kind = made
            out.append(Example(scene.image, prompt, answer, f"ask/{kind}", (), scene.scene_id))
    return out


def _ask_vqa(scene: Scene, rng: Rng) -> tuple[str, str, str] | None:
    qa = ask(scene, rng, ASK_WEIGHTS)
    if qa is None:
        return None
    prompt, answer = _ask_form(qa, rng)
    return prompt, answer, qa.family


def _ask_gqa(scene: Scene, rng: Rng) -> tuple[str, str, str] | None:
    from .gqa import GROUP_WEIGHTS, GROUPS, _Ids

    names = list(GROUP_WEIGHTS)
    group = GROUPS[rng.weighted(names, [GROUP_WEIGHTS[n] for n in names])](scene, rng, _Ids(0))
    if not group:
        return None
    q = rng.choice(group)
    prompt = rng.choice((q.question, f"{q.question}\n{VQA_SUFFIX}", f"gqa: {q.question}"))
    return prompt, q.answer, f"gqa-{q.detailed}"


def _ask_mmbench(scene: Scene, rng: Rng) -> tuple[str, str, str] | None:
    from .mmbench import ABILITIES, HINTS

    category = rng.choice(list(ABILITIES))
    mcq = ABILITIES[category][1](scene, rng)
    if mcq is None or not mcq.distractors:
        return None
    options = rng.shuffled([mcq.answer] + list(mcq.distractors[:3]))
    letters = "ABCD"[:len(options)]
    hint = rng.choice(HINTS) if rng.chance(0.3) else ""
    listed = [f"{ch}. {opt}" for ch, opt in zip(letters, options, strict=True)]
    if rng.chance(0.5):  # VLMEvalKit's MCQ prompt, as the MMBench task writes it
        text = (f"Hint: {hint}\n" if hint else "") + f"Question: {mcq.question}\nOptions:\n"
        text += "".join(line + "\n" for line in listed) + "Please select the correct answer from the options above. \n"
        prompt = text + (MC_SUFFIX if rng.chance(0.7) else "")
    else:
        lines = ([hint] if hint else []) + [mcq.question] + (["Options:"] if rng.chance(0.5) else []) + listed
        prompt = "\n".join(lines + [MC_SUFFIX])
    return prompt, letters[options.index(mcq.answer)], f"mmbench-{category}"


ASK_SOURCES: dict[str, float] = {"vqa": 0.6, "gqa": 0.25, "mmbench": 0.15}
_ASK_MAKERS = {"vqa": _ask_vqa, "gqa": _ask_gqa, "mmbench": _ask_mmbench}


def _ask_form(qa: QA, rng: Rng) -> tuple[str, str]:
    """The question as is, with the short-answer instruction, in Molmo's ``<style>: <question>``
    form, as yes/no, or as multiple choice. Counting questions never come bare: bare "How many X
    are there?" belongs to counting by pointing (PointQA's count form)."""
    style = "text_vqa" if qa.family == "read" else "vqa2"
    r = rng.random()
    if r < 0.3 and qa.family != "count":
        return qa.question, qa.answer
    if r < 0.55 or not qa.wrong:
        return f"{qa.question}\n{VQA_SUFFIX}", qa.answer
    if r < 0.8:
        return f"{style}: {qa.question}", qa.answer
    if r < 0.88 and qa.answer_type == "yes/no":
        return f"{qa.question} Please answer yes or no.", qa.answer
    return multiple_choice(qa, rng)


def multiple_choice(qa: QA, rng: Rng, n: int | None = None) -> tuple[str, str]:
    """An MMBench-style prompt: question, lettered options, letter answer."""
    k = min(n or rng.randint(2, 4), len(qa.wrong) + 1)
    options = rng.shuffled([qa.answer] + rng.sample(list(qa.wrong), k - 1))
    letters = "ABCD"[:k]
    lines = [qa.question, "Options:"] + [f"{ch}. {opt}" for ch, opt in zip(letters, options, strict=True)]
    return "\n".join(lines + [MC_SUFFIX]), letters[options.index(qa.answer)]


def point_stream(seed: int = 0, *, start: int = 0, step: int = 1, per_scene: int = 3, pool: int = 0
                 ) -> Iterator[Example]:
    """PixMo-Point: ``per_scene`` pointing examples per scene (see `POINT_KINDS`)."""
    for _, scene, rng in _scenes(seed, "point", start, step, pool):
        yield from point_examples(scene, rng, per_scene)


def point_examples(scene: Scene, rng: Rng, per_scene: int = 3) -> list[Example]:
    kinds, weights = list(POINT_KINDS), list(POINT_KINDS.values())
    out = []
    for _ in range(per_scene):
        ex = _pointing(scene, rng, rng.weighted(kinds, weights))
        if ex is not None:
            out.append(ex)
    return out


def _pointing(scene: Scene, rng: Rng, kind: str) -> Example | None:
    w, h = scene.width, scene.height
    if kind == "single":
        t = rng.choice(scene.objects)
        ref = pick_ref(rng, referring(scene, t))
        if ref is None:
            return None
        return _point_example(scene, _single_prompt(scene, t, ref, rng), [t], "point/single")
    if kind in ("multi", "count"):
        targets, phrase = _group(scene, rng, want_many=kind == "multi")
        if kind == "multi":
            prompt = rng.choice((f"Point to all the {phrase}.", f"Point to the {phrase}.",
                                 f"Point to the {phrase}.\n{POINT_SUFFIX}", f"Point to all of the {phrase}."))
            return _point_example(scene, prompt, targets, "point/multi")
        prompt = rng.choice((f"How many {phrase} are there?", f"How many {phrase} are there?\n{POINT_SUFFIX}",
                             f"How many {phrase} are there? Point to each one.", f"Count the {phrase}."))
        n = len(targets)
        tail = NONE_ANSWER if n == 0 else f"There {'is' if n == 1 else 'are'} {n}."
        pts = tuple(o.point for o in targets)
        answer = (point_text(pts, w, h) + " " + tail).strip()
        return Example(scene.image, prompt, answer, "point/count", pts, scene.scene_id)
    if kind == "none":
        phrase = _absent(scene, rng)
        prompt = rng.choice((f"Point to the {phrase}.", f"Point to all the {phrase}.",
                             f"Point to the {phrase}.\n{POINT_SUFFIX}"))
        return Example(scene.image, prompt, NONE_ANSWER, "point/none", (), scene.scene_id)
    return _point_and_ask(scene, rng)


def _single_prompt(scene: Scene, t: SceneObject, ref: Ref, rng: Rng) -> str:
    """PointQA and RefCOCO phrasings: short (RefCOCO) or long (RefCOCOg) expressions, Molmo's bare
    "Point to <expression>" and the default-style wordings of the tasks."""
    from .refer import long_expression, short_expression

    expr = long_expression(scene, t, ref, rng) if rng.chance(0.25) else short_expression(ref, rng)
    r = rng.random()
    if r < 0.35:
        return f"Point to {expr}"
    if r < 0.6:
        return f"Point to the {ref.phrase}."
    if r < 0.8:
        return f'Point to the object that this phrase describes: "{expr}". Answer with a single point.'
    if r < 0.9:
        return f"Point to the {ref.phrase}.\n{POINT_SUFFIX}"
    return f"Where is the {ref.phrase}? Point to it."


def _point_example(scene: Scene, prompt: str, targets: list[SceneObject], kind: str) -> Example:
    pts = tuple(o.point for o in targets)
    answer = point_text(pts, scene.width, scene.height) if pts else NONE_ANSWER
    return Example(scene.image, prompt, answer, kind, pts, scene.scene_id)


def _group(scene: Scene, rng: Rng, want_many: bool) -> tuple[list[SceneObject], str]:
    """Targets sharing a category (optionally a colour) and their plural phrase."""
    cats = [c for c in scene.categories() if len(scene.of(c)) >= (2 if want_many else 1)]
    if not cats:
        cats = scene.categories()
    cat = rng.choice(cats)
    objs = scene.of(cat)
    if rng.chance(0.3):
        c = rng.choice([o.colour for o in objs])
        return [o for o in objs if o.colour == c], coloured_plural(cat, c)
    return objs, plural(cat)


def _absent(scene: Scene, rng: Rng) -> str:
    present = scene.categories()
    if rng.chance(0.5) or not present:
        return plural(rng.choice([c for c in CATEGORY_NAMES if c not in present]))
    cat = rng.choice(present)
    colours = [c for c in COLOUR_NAMES if all(o.colour != c for o in scene.of(cat))]
    return coloured_plural(cat, rng.choice(colours))


LOCAL_QUESTIONS = ("What color is this object?", "What is this?", "What is this object?",
                   "What color is this?")
TWICE_QUESTIONS = ("How many of these are there?", "How many objects of this color are there?",
                   "How many of this kind of object are in the image?")


def _point_and_ask(scene: Scene, rng: Rng) -> Example:
    """A question that carries a point (Point-and-Ask's LocalQA / LookTwiceQA forms)."""
    t = rng.choice(scene.objects)
    where = point_text([t.point], scene.width, scene.height)
    question, answer = local_question(scene, t, rng)
    prompt = rng.choice((f"Consider the point {where} in the image. {question}",
                         f"Consider the point {where} in the image. {question}\n{VQA_SUFFIX}",
                         f"Look at {where}. {question}"))
    return Example(scene.image, prompt, answer, "point/ask", (t.point,), scene.scene_id)


def local_question(scene: Scene, t: SceneObject, rng: Rng) -> tuple[str, str]:
    """A question about the object under a point, local (about it) or look-twice (about the image)."""
    if rng.chance(0.5):
        q = rng.choice(LOCAL_QUESTIONS)
        return q, t.colour if "color" in q else t.category
    q = rng.choice(TWICE_QUESTIONS)
    if "color" in q:
        return q, str(sum(o.colour == t.colour for o in scene.objects))
    return q, str(len(scene.of(t.category)))


# --- ablation streams: web-style captions, referring expressions answered in plain text ------------

WEB_PROMPTS = ("Describe this image.", "Caption this image.", "What is in this picture?")
WEB_FILLERS = ("image", "photo", "picture", "a photo", "the picture")


def web_caption(scene: Scene, rng: Rng) -> str:
    """An alt-text-like "web" caption: short (one or two objects, often a filler word), and partly
    wrong: each mentioned object's colour is wrong with probability 0.3, its category with 0.2, and a
    count, when given, is off by one with probability 0.5 (the noisy counterpart of `caption`)."""
    objs = list(scene.objects)
    picked = [rng.choice(objs) for _ in range(1 + int(rng.chance(0.4)))]
    parts = []
    for o in picked:
        colour = rng.choice([c for c in COLOUR_NAMES if c != o.colour]) if rng.chance(0.3) else o.colour
        cat = rng.choice([c for c in CATEGORY_NAMES if c != o.category]) if rng.chance(0.2) else o.category
        parts.append(f"{colour} {cat}")
    text = " and ".join(parts)
    if rng.chance(0.3):
        n = len(objs) + (rng.choice((-1, 1)) if rng.chance(0.5) else 0)
        text += f", {max(1, n)} objects"
    if rng.chance(0.5):
        text = f"{rng.choice(WEB_FILLERS)} of {text}"
    return text[0].upper() + text[1:]


def web_caption_stream(seed: int = 0, *, start: int = 0, step: int = 1, pool: int = 0) -> Iterator[Example]:
    """Web-scraped alt-text stand-in: one short, partly wrong caption per scene (`web_caption`),
    on scenes of its own training stream (disjoint from the dense captions' scenes)."""
    for _, scene, rng in _scenes(seed, "cap_noisy", start, step, pool):
        yield Example(scene.image, rng.choice(WEB_PROMPTS), web_caption(scene, rng), "cap/noisy", (),
                      scene.scene_id)


def text_point(points: tuple[Point, ...] | list[Point], width: int, height: int) -> str:
    """One point as plain-text bin numbers ``(45, 67)``: the same bins as `point_text`, written
    with ordinary digit and punctuation tokens (the "no point tokens" ablation)."""
    (x, y), = points
    return f"({point_bin(x, width)}, {point_bin(y, height)})"


def refer_text_stream(seed: int = 0, *, start: int = 0, step: int = 1,
                      per_scene: int = 3, pool: int = 0) -> Iterator[Example]:
    """The single-target referring examples of `point_stream` (same prompts, its own scenes), with
    the answer written as plain-text coordinates (`text_point`) instead of point tokens; no
    multi-point, counting, "none" or point-and-ask examples."""
    for _, scene, rng in _scenes(seed, "refer_text", start, step, pool):
        for _ in range(per_scene):
            ex = _pointing(scene, rng, "single")
            if ex is not None:
                yield Example(ex.image, ex.prompt, text_point(ex.points, scene.width, scene.height),
                              "refer/text", ex.points, ex.scene_id)


STREAMS = {"cap": caption_stream, "ask": ask_stream, "point": point_stream,
           "cap_noisy": web_caption_stream, "refer_text": refer_text_stream}


def mixture_stream(weights: Mapping[str, float] | None = None, seed: int = 0, *, start: int = 0,
                   step: int = 1) -> Iterator[Example]:
    """Examples drawn from the streams in proportion to ``weights`` (default `DEFAULT_MIXTURE`),
    deterministic from ``seed``; the shard ``start``/``step`` applies to every component stream."""
    weights = dict(weights or DEFAULT_MIXTURE)
    names = [n for n, w in weights.items() if w > 0]
    its = {n: STREAMS[n](seed, start=start, step=step) for n in names}
    rng = Rng(derive("mixture", seed, start, step, tuple(sorted(weights.items()))))
    ws = [weights[n] for n in names]
    while True:
        yield next(its[rng.weighted(names, ws)])


# --- vocabulary ----------------------------------------------------------------------------------------

TOKEN_RE = re.compile(r"<[a-z]+(?:_\d+)?>|[A-Za-z]+|\d|[^\sA-Za-z\d]")


def tokenize(text: str) -> list[str]:
    """Words, single digits, punctuation marks and point tokens, in order."""
    return TOKEN_RE.findall(text)


def words() -> tuple[str, ...]:
    """Every word, digit and punctuation token the world's prompts, answers, captions and benchmark
    files can contain (point tokens excluded: see `point_tokens`)."""
    from .vocab import all_words

    return all_words()


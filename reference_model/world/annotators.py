"""Simulated human answers: the ten answers per question of VQAv2 and TextVQA.

Real annotators agree most of the time but not in the same spelling: capitals, trailing periods,
articles, number words for digits, synonyms ("grey", "mug"), and now and then a wrong answer. The
official VQA accuracy (min(1, matches/3) over leave-one-out subsets, normalization only when the
ten answers differ) is built for exactly this; the writers reproduce it so the scorers see it.
TextVQA adds OCR-like slips: confusable characters, dropped letters, upper case, "unanswerable".
"""

from __future__ import annotations

from collections import Counter

from .questions import QA, category_synonyms
from .rng import Rng

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_REGION_ALTS = {
    "left": ("on left", "on the left", "left side"), "right": ("on right", "on the right", "right side"),
    "top": ("at top", "at the top", "up"), "bottom": ("at bottom", "at the bottom", "down"),
    "middle": ("center", "in the middle", "centre"), "top left": ("upper left", "top left corner"),
    "top right": ("upper right", "top right corner"), "bottom left": ("lower left", "bottom left corner"),
    "bottom right": ("lower right", "bottom right corner"),
}
_SCENE_ALTS = {"street": ("city", "road", "town"), "park": ("outside", "outdoors", "grass"),
               "kitchen": ("indoors", "room", "inside"), "gallery": ("art", "shapes", "picture")}
_CONFUSABLE = {"o": "0", "0": "o", "i": "1", "1": "l", "l": "1", "s": "5", "5": "s", "b": "8", "8": "b",
               "e": "c", "n": "m", "m": "n", "u": "v", "g": "9", "z": "2"}


def _synonyms(qa: QA) -> tuple[str, ...]:
    a = qa.answer
    if qa.answer_type == "number" and a.isdigit() and int(a) < len(NUMBER_WORDS):
        return (NUMBER_WORDS[int(a)],)
    if a == "gray":
        return ("grey",)
    if qa.family in ("category", "shape", "which"):
        return category_synonyms(a)
    if qa.family == "where":
        return _REGION_ALTS.get(a, ())
    if qa.family == "scene":
        return _SCENE_ALTS.get(a, ())
    if a == "yes":
        return ("yeah",)
    return ()


def _surface(a: str, rng: Rng, nouns: bool) -> str:
    forms = [a.capitalize(), a + ".", a.capitalize() + "."]
    if nouns:
        forms += [f"a {a}", f"the {a}"]
    return rng.choice(forms)


def _typo(a: str, rng: Rng) -> str:
    """One OCR-like slip: a confusable character, a dropped letter or a doubled letter."""
    if len(a) < 2:
        return a.upper()
    i = rng.below(len(a))
    r = rng.random()
    if r < 0.5 and a[i] in _CONFUSABLE:
        return a[:i] + _CONFUSABLE[a[i]] + a[i + 1:]
    if r < 0.8:
        return a[:i] + a[i + 1:]
    return a[:i] + a[i] + a[i:]


def vqa_answers(qa: QA, rng: Rng) -> list[tuple[str, str]]:
    """Ten (answer, confidence) pairs for a VQAv2 question."""
    nouns = qa.answer_type == "other" and qa.family not in ("where", "read")
    r = rng.random()
    if r < 0.45:
        return [(qa.answer, "yes")] * 10
    exact = rng.randint(6, 9) if r < 0.82 else rng.randint(3, 6)
    n_wrong = 0 if r < 0.82 else rng.randint(1, 3)
    out = [(qa.answer, "yes")] * exact
    syn = _synonyms(qa)
    while len(out) < 10 - n_wrong:
        if syn and rng.chance(0.5):
            out.append((rng.choice(syn), rng.choice(("yes", "maybe"))))
        else:
            out.append((_surface(qa.answer, rng, nouns), "yes"))
    while len(out) < 10:
        bad = rng.choice(qa.wrong) if qa.wrong else _surface(qa.answer, rng, nouns)
        out.append((bad, rng.choice(("maybe", "no", "yes"))))
    return rng.shuffled(out)


def textvqa_answers(qa: QA, rng: Rng, distractors: tuple[str, ...]) -> list[str]:
    """Ten answers for a TextVQA question, with OCR-like variation."""
    a = qa.answer
    r = rng.random()
    if r < 0.35:
        return [a] * 10
    exact = rng.randint(5, 9) if r < 0.85 else rng.randint(3, 5)
    out = [a] * exact
    while len(out) < 10:
        k = rng.random()
        if k < 0.3:
            out.append(a.upper() if rng.chance(0.5) else a.capitalize())
        elif k < 0.6:
            out.append(_typo(a, rng))
        elif k < 0.75:
            out.append(rng.choice((f"{a} sign", f"it says {a}", f"{a}.")))
        elif k < 0.85 and distractors:
            out.append(rng.choice(distractors))
        else:
            out.append("unanswerable" if rng.chance(0.3) else a)
    return rng.shuffled(out)


def most_common(answers: list[str], canonical: str) -> str:
    """VQA's ``multiple_choice_answer``: the most frequent answer (ties: the canonical one, then the
    first seen)."""
    counts = Counter(answers)
    top = max(counts.values())
    if counts.get(canonical, 0) == top:
        return canonical
    return next(a for a in answers if counts[a] == top)

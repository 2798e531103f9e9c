"""The world's vocabulary: every token its prompts, answers, captions and benchmark questions use.

`training.words()` returns it for the reference model's tokenizer. It is the union of the ontology
(colours, categories, plurals, sign words in upper and lower case, numbers) and the fixed words of
every template, listed here; a test tokenizes thousands of generated examples and benchmark
questions and checks that nothing falls outside. Left out on purpose: the simulated annotators'
slips in ground-truth answers (OCR-like typos such as "9ate"), which no prompt contains.
"""

from __future__ import annotations

import re

from .annotators import NUMBER_WORDS
from .ontology import CATEGORIES, COLOUR_NAMES, SIGN_WORDS, THEMES

# Fixed words of the templates in language, questions, training, gqa, mmbench, refer, pointqa and
# annotators (kept as one text; `all_words` splits it).
TEMPLATE_TEXT = """
a an the is are there was this that these it its of in on at to and or with without by for from as
what where which how many who why do does can you see point points look consider answer question
questions options option please select correct above below left right top bottom middle center centre
front behind side corner upper lower leftmost rightmost topmost bottommost far next up down
single word phrase letter given choices directly each one if none say so count total objects object
thing things image picture scene place kind type color shape main written says say shows show
number numbers wearing hat shirt have same different bigger larger smaller big small biggest smallest
large little both any all every partly covering used can be inside outside indoors outdoors city road
town grass room art shapes display yeah yes no not street park kitchen gallery caption describe
describes detail detailed description give write what's in of is there are some far next comes total
hint computer program drawn carefully whole based on has single main most often appears contain
contains drink drinking driving giving shade living decorating flying wind playing games telling time
showing information person people mug vehicle auto home building board signboard plant round oval
rectangle box rhombus sphere watch toy polygon it's him she he we they them mine yours
vqa text gqa consider point phrase describes answer with single point if none say so
unanswerable sign kind place this these how many of of color are there than using B C D
"""
PUNCTUATION = tuple(".,?!:;'\"-_()[]<>/")


def _split(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]+|\d", text))


def all_words() -> tuple[str, ...]:
    words = _split(TEMPLATE_TEXT)
    words |= {w.capitalize() for w in list(words)}
    for c in CATEGORIES:
        words |= {c.name, c.plural, c.supercategory, c.name.capitalize(), c.plural.capitalize()}
        words |= _split(c.use)
    words |= set(COLOUR_NAMES) | {c.capitalize() for c in COLOUR_NAMES} | {"grey"}
    words |= set(THEMES) | {t.capitalize() for t in THEMES}
    words |= set(SIGN_WORDS) | {w.lower() for w in SIGN_WORDS} | {w.capitalize() for w in SIGN_WORDS}
    words |= set(NUMBER_WORDS) | {str(d) for d in range(10)}
    words |= set(PUNCTUATION)
    return tuple(sorted(words))

"""Counting answers: "3", "three", "There are 12 apples." -> an int. Sits in `Task.parse` (PointQA).

The last number stated outside point markup wins, because counting answers end with the total
("Counting the <points ...>dogs</points> shows a total of 3."). Number words cover zero to twenty and
the tens up to ninety, optionally hyphenated with a unit ("twenty-one"); "no"/"none" are not read as 0
(too ambiguous in free text). Signed and fractional numbers are not counts: ``None``.
"""

from __future__ import annotations

import re

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
          "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
WORDS: dict[str, int] = {w: i for i, w in enumerate(_UNITS)}
WORDS.update(_TENS)
WORDS.update({f"{t}-{u}": v + i for t, v in _TENS.items() for i, u in enumerate(_UNITS[1:10], 1)})

_MARKUP = re.compile(r"<(points?|box)\b[^<>]*>.*?</\1>|<[^<>]*>", re.IGNORECASE | re.DOTALL)
_TOKEN = re.compile(r"(?<![\w.\-])(\d+(?:,\d{3})*)(?![\w]|\.\d)|\b(" + "|".join(
    sorted(WORDS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def strip_markup(text: str) -> str:
    """Text with point/box tags (and their alt text) and bare tokens such as ``<x_12>`` removed."""
    return _MARKUP.sub(" ", text)


def parse_count(text: str) -> int | None:
    """The last count stated in ``text`` (digits or number words), or None when there is none."""
    found = _TOKEN.findall(strip_markup(text))
    if not found:
        return None
    digits, word = found[-1]
    return int(digits.replace(",", "")) if digits else WORDS[word.lower()]


def number_words_to_digits(text: str) -> str:
    """Replace standalone number words by digits ("two dogs" -> "2 dogs")."""
    pattern = r"\b(" + "|".join(sorted(WORDS, key=len, reverse=True)) + r")\b"
    return re.sub(pattern, lambda m: str(WORDS[m.group(1).lower()]), text, flags=re.IGNORECASE)

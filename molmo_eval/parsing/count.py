"""Counting answers: "3", "three", "There are 12 apples." -> an int. Sits in `Task.parse` (PointQA).

The last number stated outside point markup wins, because counting answers end with the total
("Counting the <points ...>dogs</points> shows a total of 3."). Number words cover zero to twenty and
the tens up to ninety, optionally hyphenated with a unit ("twenty-one"); "no"/"none" are not read as 0
(too ambiguous in free text). Signed and fractional numbers are not counts: ``None``. A numeral of more
than `MAX_COUNT_DIGITS` digits is no count either (and is never converted: Python refuses to turn
numerals beyond ~4300 digits into ints); `states_count` tells such text from text without a number.
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

MAX_COUNT_DIGITS = 12

# a tag's alt text holds no "<" (a bounded scan: no quadratic search for a missing closing tag)
_MARKUP = re.compile(r"<(points?|box)\b[^<>]*>[^<]*</\1>|<[^<>]*>", re.IGNORECASE)
_TOKEN = re.compile(r"(?<![\w.\-])(\d+(?:,\d{3})*)(?![\w]|\.\d)|\b(" + "|".join(
    sorted(WORDS, key=len, reverse=True)) + r")\b", re.IGNORECASE)


def strip_markup(text: str) -> str:
    """Text with point/box tags (and their alt text) and bare tokens such as ``<x_12>`` removed."""
    return _MARKUP.sub(" ", text)


def parse_count(text: str) -> int | None:
    """The last count stated in ``text`` (digits or number words), or None when there is none (or it
    has more than `MAX_COUNT_DIGITS` digits)."""
    found = _TOKEN.findall(strip_markup(text))
    if not found:
        return None
    digits, word = found[-1]
    if not digits:
        return WORDS[word.lower()]
    digits = digits.replace(",", "")
    return int(digits) if len(digits) <= MAX_COUNT_DIGITS else None


def states_count(text: str) -> bool:
    """Whether ``text`` states a number outside point markup (readable by `parse_count` or not)."""
    return _TOKEN.search(strip_markup(text)) is not None


def number_words_to_digits(text: str) -> str:
    """Replace standalone number words by digits ("two dogs" -> "2 dogs")."""
    pattern = r"\b(" + "|".join(sorted(WORDS, key=len, reverse=True)) + r")\b"
    return re.sub(pattern, lambda m: str(WORDS[m.group(1).lower()]), text, flags=re.IGNORECASE)

"""Yes/no answers (parse stage of pope), by the official POPE ``evaluate.py`` rule.

The rule, kept exactly because published POPE numbers were computed with it: keep the text before
the first ``.``; delete commas; split on single spaces (not on other whitespace); the answer is "no"
iff one of the words is exactly ``No``, ``not`` or ``no``, and "yes" otherwise — including for empty
text, "NO", "No!", "Nope" or "no\\nthere is".
"""

from __future__ import annotations

_NO_WORDS = frozenset({"No", "not", "no"})


def pope_first_sentence(text: str) -> str:
    """Mirrors evaluate.py: ``text.split('.')[0]`` when the text contains a period."""
    return text.split(".", 1)[0]


def pope_says_yes(text: str) -> bool:
    """POPE evaluate.py yes/no rule: False ("no") iff a space-separated word of the first sentence,
    commas removed, is ``No``, ``not`` or ``no``; True ("yes") otherwise."""
    words = pope_first_sentence(text).replace(",", "").split(" ")
    return _NO_WORDS.isdisjoint(words)

"""Multiple-choice extraction: VLMEvalKit's can_infer rules (matching_util.py), worked through by hand.

can_infer_option: replace .()[],:;!*#{} by spaces, split on whitespace; exactly one option letter among the
tokens and its first position > len(tokens) - 5 -> that letter; a refusal phrase or a lone "Z" -> "Z"; else
the case-insensitive "answer is X" (X in A-D) pattern. can_infer_text: lowercased answer no longer than
twice the options' total length, containing exactly one option's text.
"""

from __future__ import annotations

import pytest

from molmo_eval.core.types import AnswerKind
from molmo_eval.parsing.choice import can_infer, can_infer_option, can_infer_text, parse_choice

ANIMALS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}  # total option length 14 -> text limit 28

CASES = [
    ("B", ANIMALS, "B"),
    ("(B)", ANIMALS, "B"),
    ("B. dog", ANIMALS, "B"),
    ("B)", ANIMALS, "B"),
    ("Answer: B", ANIMALS, "B"),
    ("**C**", ANIMALS, "C"),
    ("B\n", ANIMALS, "B"),
    ("A", ANIMALS, "A"),  # the quantifier check only runs with VERBOSE set
    # the letter must sit among the last five tokens ...
    ("B is the answer here", ANIMALS, None),  # B at 0, 5 tokens: 0 > 0 fails; no text match either
    ("B is my answer", ANIMALS, "B"),  # 0 > -1
    # ... otherwise only the "answer is X" pattern rescues it
    ("The answer is B because the dog is brown and also big", ANIMALS, "B"),
    ("I think B is right but it could be something else entirely", ANIMALS, None),
    ("The correct answer is **C**. Here is why.", ANIMALS, "C"),
    ("the answer is a dog", ANIMALS, "A"),  # VLMEvalKit quirk: case-insensitive pattern reads "a" as A
    # two letters: ambiguous for the option rule
    ("A B", ANIMALS, None),
    ("A or B", ANIMALS, None),
    # lowercase letters are not option tokens
    ("a", ANIMALS, None),
    ("b", ANIMALS, None),
    # option text
    ("dog", ANIMALS, "B"),
    ("a dog", ANIMALS, "B"),
    ("It is a DOG.", ANIMALS, "B"),
    ("cat or dog", ANIMALS, None),
    ("It is clearly a very fluffy dog, I'm sure", ANIMALS, None),  # 40 chars > 28: text rule refuses
    # refusals and Z
    ("Z", ANIMALS, "Z"),
    ("Sorry, I can't help with images of people yet.", ANIMALS, "Z"),
    ("Cannot determine the answer", ANIMALS, "Z"),
    ("Failed to obtain answer via API", ANIMALS, None),
    ("", ANIMALS, None),
    # letters outside the options
    ("C", {"A": "yes", "B": "no"}, None),
    ("E", ANIMALS, None),
    # substring options
    ("reddish", {"A": "red", "B": "reddish"}, None),
    ("red", {"A": "red", "B": "reddish"}, "A"),
    # numeric options and the length limit (2 * 2 = 4 characters)
    ("1", {"A": "1", "B": "2"}, "A"),
    ("The 1", {"A": "1", "B": "2"}, None),
    ("12", {"A": "1", "B": "2"}, None),
]


@pytest.mark.parametrize("text,choices,expected", CASES)
def test_can_infer(text, choices, expected):
    assert can_infer(text, dict(choices)) == expected


def test_option_rule_before_text_rule():
    # "B" as a token wins over the text of option A appearing in the answer
    assert can_infer_option("cat B", ANIMALS) == "B"
    assert can_infer_text("cat B", ANIMALS) == "A"
    assert can_infer("cat B", ANIMALS) == "B"


def test_choices_are_not_mutated():
    choices = {"A": "Cat", "B": "Dog"}
    assert can_infer("dog", choices) == "B"
    assert choices == {"A": "Cat", "B": "Dog"}


def test_parse_choice_marks_unresolved_as_unparseable():
    ok = parse_choice("B", ANIMALS)
    assert ok.kind is AnswerKind.CHOICE and ok.value == "B" and ok.parse_ok
    bad = parse_choice("A or B", ANIMALS)
    assert bad.value is None and not bad.parse_ok
    refused = parse_choice("Z", ANIMALS)
    assert refused.value == "Z" and refused.parse_ok  # resolved, but never a correct letter

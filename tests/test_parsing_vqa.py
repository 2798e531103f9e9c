"""Table tests for VQA answer normalization and POPE's yes/no rule.

Every expected value below is worked out by hand from the rules of the official scripts
(vqaEval.py processPunctuation / processDigitArticle, the EvalAI answer processor, POPE evaluate.py),
as described next to each case.
"""

from __future__ import annotations

import pytest

from molmo_eval.parsing.vqa import (
    CONTRACTIONS,
    clean_answer,
    evalai_normalize,
    evalai_process,
    normalize_answer,
    process_digit_article,
    process_punctuation,
)
from molmo_eval.parsing.yesno import pope_first_sentence, pope_says_yes

PUNCTUATION_CASES = [
    # (text, expected, why)
    ("dog!", "dog ", "a mark not touching a space becomes a space"),
    ("dog !", "dog ", "a mark next to a space is deleted"),
    ("hot-dog", "hot dog", "hyphen inside a word -> space"),
    ("hot - dog", "hot  dog", "hyphen between spaces -> deleted, both spaces stay"),
    ("1,000", "1000", "digit,digit: every mark is deleted"),
    ("a-b 1,2", "ab 12", "the digit-comma rule applies to the whole text, the hyphen too"),
    ("red,white", "red white", "no digits around the comma -> space"),
    ("red, white", "red white", "comma before a space -> deleted"),
    ("x-y z-", "x y z ", "a trailing mark has no space after it: a space too"),
    ("(dog)", " dog ", "parentheses not touching spaces -> spaces"),
    ("3.5", "3.5", "a period followed by a digit stays"),
    ("5.", "5", "a period after a digit still goes: the (?!<=\\d) look-ahead is a typo"),
    ("e.g. dog", "eg dog", "periods not followed by a digit go"),
    ("U.S.A.", "USA", "case is left to processDigitArticle"),
    ("." * 40 + "a", "." * 8 + "a", "re.UNICODE passed as count: only the first 32 periods go"),
    ("50% off: $5 #1 & more ' ~ | ^ *", "50% off: $5 #1 & more ' ~ | ^ *", "not in the punctuation list"),
    ("what?!", "what  ", "'?' and '!' each -> a space"),
    ("a/b\\c_d", "a b c d", "slash, backslash and underscore are punctuation"),
]


@pytest.mark.parametrize(("text", "expected", "why"), PUNCTUATION_CASES)
def test_process_punctuation(text: str, expected: str, why: str) -> None:
    assert process_punctuation(text) == expected, why


DIGIT_ARTICLE_CASES = [
    ("Two", "2", "lower-cased before the number map"),
    ("none", "0", "none is a number word"),
    ("eleven", "eleven", "the map stops at ten"),
    ("one hundred", "1 hundred", "word by word"),
    ("a dog", "dog", "articles dropped"),
    ("The  Dog", "dog", "split on any whitespace, join with one space"),
    ("dog a", "dog", "anywhere in the text"),
    ("the", "", "only an article -> empty"),
    ("dont", "don't", "contraction"),
    ("Im", "im", "the capitalized key 'Im' never matches a lower-cased word"),
    ("somebody'd", "somebodyd", "the table maps it without the apostrophe"),
    ("its", "its", "not in the table"),
    ("yes\u00a0no", "yes no", "no-break space is whitespace for str.split"),
]


@pytest.mark.parametrize(("text", "expected", "why"), DIGIT_ARTICLE_CASES)
def test_process_digit_article(text: str, expected: str, why: str) -> None:
    assert process_digit_article(text) == expected, why


NORMALIZE_CASES = [
    ("Yes!", "yes"),
    ("Two dogs.", "2 dogs"),
    ("the 1,000 dogs", "1000 dogs"),
    ("A Tennis-Racket", "tennis racket"),
    ("an (apple)", "apple"),
    ("Whats up?", "what's up"),
    ("2.0", "2.0"),
    ("1,,2", "1 2"),  # (\d)(,)(\d) does not match "1,,2": each comma -> a space
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZE_CASES)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_clean_answer_only_touches_newlines_tabs_and_ends() -> None:
    assert clean_answer("  a\tb\nc  ") == "a b c"
    assert clean_answer("a  b") == "a  b"


def test_contractions_table_size_and_quirks() -> None:
    assert len(CONTRACTIONS) == 120  # the official table has 120 keys
    assert CONTRACTIONS["yall'll"] == "y'all'll" and CONTRACTIONS["twas"] == "'twas"
    assert CONTRACTIONS["let's"] == "let's"


EVALAI_CASES = [
    # EvalAIAnswerProcessor: lower, drop ',' and '?', "'s" -> " 's", then the same two steps
    ("The Man's Hat?", "man 's hat"),
    ("1,000", "1000"),
    ("Two, three", "2 3"),
    ("YES.", "yes"),
]


@pytest.mark.parametrize(("text", "expected"), EVALAI_CASES)
def test_evalai_process(text: str, expected: str) -> None:
    assert evalai_process(text) == expected


def test_evalai_comma_rule_differs_from_official() -> None:
    # EvalAI's (?<=\d)(\,)+(?=\d) matches "1,,2" -> every mark deleted; vqaEval.py's does not
    assert evalai_normalize("1,,2") == "12"
    assert normalize_answer("1,,2") == "1 2"


POPE_CASES = [
    ("Yes", True), ("No", False), ("no.", False), ("No, there is not.", False),
    ("NO", True),  # only No / not / no count
    ("Not really", True),  # "Not" is not in the list
    ("not", False),
    ("There is no dog in the image.", False),
    ("Yes. No.", True),  # only the first sentence
    (".no", True),  # the first sentence is empty
    ("no\nthere is", True),  # split on single spaces: the word is "no\nthere"
    ("No\tdog", True),
    ("", True), (" ", True),  # no "no" word -> yes
    ("nope", True), ("No!", True), ("no,", False), ("yes,no", True), ("a, no", False),
    ("I do not think so", False), ("I don't think so", True),
]


@pytest.mark.parametrize(("text", "yes"), POPE_CASES)
def test_pope_rule(text: str, yes: bool) -> None:
    assert pope_says_yes(text) is yes


def test_pope_first_sentence() -> None:
    assert pope_first_sentence("Yes, there is. No.") == "Yes, there is"
    assert pope_first_sentence("no period") == "no period"

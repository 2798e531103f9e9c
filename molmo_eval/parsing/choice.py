"""Multiple-choice letter extraction without an LLM judge (MMBench; DESIGN §5). Sits in `Task.parse`.

Mirrors VLMEvalKit's exact-matching path (``vlmeval/utils/matching_util.py``: ``can_infer`` =
``can_infer_option`` then ``can_infer_text``, as of VLMEvalKit commit 2cf2a36c, June 2026: the
last-five-tokens and text-length rules of Aug 2025 and the "answer is X" rule of June 2026 included),
quirks included, with the ``VERBOSE`` environment variable unset (its default). An answer that neither rule resolves is unresolved (``None``): VLMEvalKit
then scores it wrong under exact matching, and so do we; nothing is ever chosen at random.
``"Z"`` is VLMEvalKit's "refused / none of the options" letter: a resolved answer that is never correct.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from molmo_eval.core.types import Answer, AnswerKind

REFUSAL = "Z"
_API_FAILURE = "Failed to obtain answer via API"
_REJECTIONS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
_PUNCT = ".()[],:;!*#{}"
_PUNCT_TABLE = str.maketrans({c: " " for c in _PUNCT})
# "The correct answer is **B**" / "the answer is c": case-insensitive, so "the answer is a dog" reads as A
_VERBOSE = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")


def can_infer_option(answer: str, choices: Mapping[str, object]) -> str | None:
    """Mirrors ``can_infer_option``: exactly one option letter as a standalone token among the last
    five tokens (after turning ``.()[],:;!*#{}`` into spaces), a refusal phrase -> ``Z``, a lone ``Z``
    token -> ``Z``, then the "answer is X" pattern (letters A-D only, any case)."""
    if _API_FAILURE in answer:
        return None
    if any(r in answer for r in _REJECTIONS):
        return REFUSAL
    tokens = answer.translate(_PUNCT_TABLE).split()
    present = [c for c in choices if c in tokens]
    if len(present) == 1:
        ch = present[0]
        if tokens.index(ch) > len(tokens) - 5:
            return ch
    elif not present and REFUSAL in tokens:
        return REFUSAL
    m = _VERBOSE.search(answer)
    if m and m.group(1).upper() in choices:
        return m.group(1).upper()
    return None


def can_infer_text(answer: str, choices: Mapping[str, object]) -> str | None:
    """Mirrors ``can_infer_text``: the lowercased answer, if not longer than twice the options' total
    length, contains the text of exactly one option (substring match, lowercased)."""
    answer = answer.lower()
    if len(answer) > 2 * sum(len(str(v)) for v in choices.values()):
        return None
    assert all(k in string.ascii_uppercase for k in choices), choices
    hits = [k for k, v in choices.items() if str(v).lower() in answer]
    return hits[0] if len(hits) == 1 else None


def can_infer(answer: object, choices: Mapping[str, object]) -> str | None:
    """Mirrors ``can_infer``: the option rule first, then the text rule. None: unresolved."""
    text = str(answer)
    return can_infer_option(text, choices) or can_infer_text(text, choices)


def parse_choice(text: str, choices: Mapping[str, object]) -> Answer:
    """An `Answer` holding the extracted letter; unresolved -> ``parse_ok=False`` (scored wrong)."""
    letter = can_infer(text, choices)
    return Answer(AnswerKind.CHOICE, letter, parse_ok=letter is not None)

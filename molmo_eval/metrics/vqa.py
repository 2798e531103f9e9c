"""VQA accuracy (score stage of vqav2 and textvqa): per-sample soft accuracy against the human answers.

    accuracy = mean over i of min(1, #{j != i : answer_j == prediction} / 3)

i.e. the mean over the leave-one-out subsets of the human answers. The variants differ only in how
the prediction and the answers are normalized before matching:

- ``official`` (vqaEval.py): clean (newline/tab, strip); normalize both sides *only* when the cleaned
  human answers are not all identical, so with ten identical "yes" answers a prediction "Yes" scores 0;
- ``lmms-eval`` (lmms-eval 0.7.3, end to end): its task pipeline strips the generation, then
  ``vqav2_process_results`` cleans (newline/tab, strip) and applies EvalAI's punctuation and
  digit/article steps to the prediction and to every answer, always;
- ``m4c`` (LLaVA / MMF TextVQA evaluator): both sides always go through the EvalAI processor.

The official leave-one-out drops the answers *equal as dicts* to the held-out one (``item != gtAnsDatum``);
with the real files every answer has a distinct ``answer_id``, so exactly one is dropped. When the
answer dicts are not distinct, `loo_groups` records which ones compare equal apart from their text so
the same (over-)dropping is reproduced.

Aggregation is the plain mean of the per-sample values (`molmo_eval.metrics.generic.mean`), which is
what vqaEval.py's ``overall`` / ``perQuestionType`` / ``perAnswerType`` compute before rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from molmo_eval.core.metric import Metric
from molmo_eval.metrics.generic import mean
from molmo_eval.parsing.vqa import clean_answer, evalai_normalize, evalai_process, normalize_answer

Groups = tuple[int, ...] | None


def loo_accuracy(pred: str, answers: Sequence[str], groups: Groups = None) -> float:
    """Mean over held-out answers i of min(1, matches among the others / 3); mirrors the accuracy loop
    of vqaEval.py (same summation order, so values are bit-identical). ``groups[i] == groups[j]``
    marks answer dicts equal apart from their text (see the module docstring)."""
    n = len(answers)
    if n == 0:
        return float("nan")
    if groups is None:
        total = 0
        for a in answers:
            if a == pred:
                total += 1
        if total == 0:
            return 0.0
        acc_sum: float = 0
        for a in answers:
            acc_sum += min(1, (total - (a == pred)) / 3)
        return acc_sum / n
    acc_sum = 0
    for i, a_i in enumerate(answers):
        matches = 0
        for j, a_j in enumerate(answers):
            if a_j == pred and not (groups[j] == groups[i] and a_j == a_i):
                matches += 1
        acc_sum += min(1, matches / 3)
    return acc_sum / n


def loo_groups(answer_records: Sequence[Mapping[str, Any]]) -> Groups:
    """Group ids of answer dicts that compare equal apart from ``answer``; None when all differ
    (the usual case: distinct ``answer_id``)."""
    try:
        ids = {r["answer_id"] for r in answer_records}
    except (KeyError, TypeError):  # a missing or unhashable id: compare the dicts pairwise
        ids = set()
    if len(ids) == len(answer_records):
        return None
    rests = [{k: v for k, v in r.items() if k != "answer"} for r in answer_records]
    groups: list[int] = []
    for i, rest in enumerate(rests):
        groups.append(next(j for j in range(i + 1) if rests[j] == rest))
    return None if len(set(groups)) == len(groups) else tuple(groups)



Truths = tuple[tuple[str, ...], bool]  # the answers as compared, whether they were normalized


@lru_cache(maxsize=1 << 18)
def _clean(text: str) -> str:
    return clean_answer(text)


def _truths(answers: tuple[str, ...], normalize: Callable[[str], str]) -> Truths:
    cleaned = tuple(map(_clean, answers))
    if len(set(cleaned)) > 1:
        return tuple(map(normalize, cleaned)), True
    return cleaned, False


@lru_cache(maxsize=1 << 14)  # answer tuples repeat less than answer strings; bounded memory
def _official_truths(answers: tuple[str, ...]) -> Truths:
    return _truths(answers, normalize_answer)


@lru_cache(maxsize=1 << 14)
def _lmms_truths(answers: tuple[str, ...]) -> Truths:
    return tuple(_lmms_normalized(a) for a in answers), True


@lru_cache(maxsize=1 << 14)
def _m4c_truths(answers: tuple[str, ...]) -> Truths:
    return tuple(map(evalai_process, answers)), True


@lru_cache(maxsize=1 << 18)
def _clean_normalized(pred: str) -> str:
    return normalize_answer(clean_answer(pred))


@lru_cache(maxsize=1 << 18)
def _lmms_normalized(text: str) -> str:
    return evalai_normalize(clean_answer(text))


def _accuracy(pred: str, truths: Truths, groups: Groups) -> float:
    if groups is not None:
        return loo_accuracy(pred, truths[0], groups)
    total = truths[0].count(pred)
    if total == 0:
        return 0.0  # the common case of a wrong answer, without the leave-one-out loop
    if total >= 4:
        return 1.0  # every held-out subset keeps >= 3 matches: the official sum is exactly n
    return loo_accuracy(pred, truths[0], None)


def official_accuracy(pred: str, answers: tuple[str, ...], groups: Groups = None) -> float:
    """vqaEval.py accuracy of one prediction (normalization only when the answers differ)."""
    truths = _official_truths(answers)
    return _accuracy(_clean_normalized(pred) if truths[1] else _clean(pred), truths, groups)


def lmms_eval_accuracy(pred: str, answers: tuple[str, ...], groups: Groups = None) -> float:
    """lmms-eval 0.7.3 ``vqav2_process_results`` behind its pipeline's ``strip()``: prediction and every
    answer cleaned, then EvalAI's ``process_punctuation`` and ``process_digit_article`` (no
    ``word_tokenize``); the leave-one-out as in vqaEval.py."""
    return _accuracy(_lmms_normalized(pred), _lmms_truths(answers), groups)


def m4c_accuracy(pred: str, answers: tuple[str, ...], groups: Groups = None) -> float:
    """LLaVA/MMF ``TextVQAAccuracyEvaluator``: everything EvalAI-processed; answers told apart by index."""
    return _accuracy(evalai_process(pred), _m4c_truths(answers), None)


SCORERS = {"official": official_accuracy, "lmms-eval": lmms_eval_accuracy, "m4c": m4c_accuracy}


def vqa_metrics() -> tuple[Metric, ...]:
    return (mean("accuracy", description="VQA soft accuracy: mean over leave-one-out answer subsets of "
                                         "min(1, matches/3)"),)

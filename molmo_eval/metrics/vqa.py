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

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np

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


class _Memo(dict[str, str]):
    """``memo[s]`` is ``fn(s)``, computed once per distinct string (real VQAv2 val holds 2.1 million
    human answers but tens of thousands of distinct strings, each normalized once); bounded: the memo
    starts afresh when it holds ``limit`` strings."""

    def __init__(self, fn: Callable[[str], str], limit: int = 1 << 20):
        super().__init__()
        self.fn, self.limit = fn, limit

    def __missing__(self, key: str) -> str:
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.fn(key)
        return value


_clean = _Memo(clean_answer).__getitem__
_official = _Memo(normalize_answer).__getitem__  # of cleaned text
_lmms_normalized = _Memo(lambda text: evalai_normalize(clean_answer(text))).__getitem__  # of raw text
_evalai = _Memo(evalai_process).__getitem__  # of raw text
_clean_normalized = _Memo(lambda text: normalize_answer(clean_answer(text))).__getitem__


def _truths(answers: Sequence[str], normalize: Callable[[str], str]) -> Truths:
    """The cleaned answers, normalized when they are not all identical (as vqaEval.py decides)."""
    cleaned = tuple(map(_clean, answers))
    if len(cleaned) > 1 and cleaned.count(cleaned[0]) != len(cleaned):
        return tuple(map(normalize, cleaned)), True
    return cleaned, False


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
    truths = _truths(answers, _official)
    return _accuracy(_clean_normalized(pred) if truths[1] else _clean(pred), truths, groups)


def lmms_eval_accuracy(pred: str, answers: tuple[str, ...], groups: Groups = None) -> float:
    """lmms-eval 0.7.3 ``vqav2_process_results`` behind its pipeline's ``strip()``: prediction and every
    answer cleaned, then EvalAI's ``process_punctuation`` and ``process_digit_article`` (no
    ``word_tokenize``); the leave-one-out as in vqaEval.py."""
    return _accuracy(_lmms_normalized(pred), (tuple(map(_lmms_normalized, answers)), True), groups)


def m4c_accuracy(pred: str, answers: tuple[str, ...], groups: Groups = None) -> float:
    """LLaVA/MMF ``TextVQAAccuracyEvaluator``: everything EvalAI-processed; answers told apart by index."""
    return _accuracy(_evalai(pred), (tuple(map(_evalai, answers)), True), None)


SCORERS = {"official": official_accuracy, "lmms-eval": lmms_eval_accuracy, "m4c": m4c_accuracy}


def batch_accuracy(variant: str, preds: Sequence[object], answer_sets: Sequence[Sequence[str]],
                   groups: Sequence[Groups]) -> list[float]:
    """``SCORERS[variant](pred, answers, groups)`` of many questions, bit for bit, with the matching
    done by numpy: every distinct string is cleaned and normalized once (`_Memo`) and given an integer
    code, and the leave-one-out sum runs over the answer columns in the official order, for all
    questions with the same number of answers at once. A prediction that is not text scores 0 (as
    `vqa_score` has it); questions with `loo_groups`, and batches too small to gain from numpy, go
    through the per-question scorer."""
    out = [0.0] * len(preds)
    by_len: dict[int, list[int]] = {}
    scorer = SCORERS[variant]
    small = len(preds) < _MIN_BATCH
    for i, (pred, answers, g) in enumerate(zip(preds, answer_sets, groups)):
        if type(pred) is not str:
            continue
        if small or g is not None or not answers:
            out[i] = scorer(pred, tuple(answers), g)  # type: ignore[arg-type]
            continue
        by_len.setdefault(len(answers), []).append(i)
    for k, rows in by_len.items():
        values = _matched(variant, [preds[i] for i in rows], [answer_sets[i] for i in rows], k)  # type: ignore[misc]
        for i, v in zip(rows, values.tolist()):
            out[i] = v
    return out


_MIN_BATCH = 256  # below this, numpy's per-call cost exceeds what it saves


class _Codes(dict[str, int]):
    """An integer per distinct string, in order of first lookup; ``names[code]`` is the string."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __missing__(self, key: str) -> int:
        code = self[key] = len(self.names)
        self.names.append(key)
        return code

    def many(self, keys: list[str]) -> list[int]:
        """``[self[k] for k in keys]``, the new strings coded in one pass (dict and list work in C)."""
        new = [k for k in dict.fromkeys(keys) if k not in self]
        if new:
            self.update(zip(new, range(len(self.names), len(self.names) + len(new))))
            self.names.extend(new)
        return list(map(self.__getitem__, keys))


class _CodeOf(dict[str, int]):
    """``memo[raw]``: the code (in ``codes``) of ``fn(raw)``, one lookup per raw string; `array` codes a
    whole column, calling ``fn`` once per distinct string not met before."""

    def __init__(self, fn: Callable[[str], str], codes: _Codes):
        super().__init__()
        self.fn, self.codes = fn, codes

    def __missing__(self, key: str) -> int:
        code = self[key] = self.codes[self.fn(key)]
        return code

    def array(self, texts: Iterable[str]) -> np.ndarray:
        """The codes of ``texts`` (a column of raw strings): each string is looked up once, in a
        table of this column's distinct strings (a large column is bound by memory latency), and
        each distinct one not met before goes through ``fn`` once."""
        raw = _Codes()
        at = np.fromiter(map(raw.__getitem__, texts), dtype=np.int64)  # raw string -> its first-seen code
        names = raw.names
        new = [t for t, c in zip(names, map(self.get, names)) if c is None]
        if new:
            self.update(zip(new, self.codes.many(list(map(self.fn, new)))))
        return np.fromiter(map(self.__getitem__, names), dtype=np.int64, count=len(names))[at]


class _Coder:
    """The codes of one variant, kept from batch to batch (a split is scored in chunks, and most of a
    chunk's strings were met in an earlier one), so a raw string costs a Python call once; bounded:
    `_coder` starts afresh past ``_CODER_LIMIT`` strings."""

    def __init__(self, variant: str):
        self.codes = _Codes()
        if variant == "official":
            self.cleaned = _CodeOf(clean_answer, self.codes)
            self.cleaned_normalized = _CodeOf(_clean_normalized, self.codes)
        else:  # m4c, lmms-eval: both sides always processed
            self.cleaned = _CodeOf(_evalai if variant == "m4c" else _lmms_normalized, self.codes)
        self._normalized = np.zeros(0, dtype=np.int64)  # code -> code of its official normalization; -1: not yet

    def normalized(self, needed: np.ndarray) -> np.ndarray:
        """code -> the code of `_official` of its string, for (at least) the codes in ``needed``."""
        table = self._grown()
        wanted = np.zeros(len(table), dtype=bool)
        wanted[needed] = True
        todo = np.flatnonzero(wanted & (table < 0)).tolist()
        if todo:
            names = self.codes.names
            coded = self.codes.many(list(map(_official, map(names.__getitem__, todo))))  # may add codes
            table = self._grown()
            table[np.array(todo, dtype=np.int64)] = coded
        return table

    def _grown(self) -> np.ndarray:
        n, old = len(self.codes.names), self._normalized
        if len(old) < n:
            self._normalized = np.concatenate([old, np.full(max(n - len(old), len(old)), -1, dtype=np.int64)])
        return self._normalized


_CODER_LIMIT = 1 << 21
_coders: dict[str, _Coder] = {}


def _coder(variant: str) -> _Coder:
    coder = _coders.get(variant)
    if coder is None or len(coder.codes) > _CODER_LIMIT:
        coder = _coders[variant] = _Coder(variant)
    return coder


def _matched(variant: str, preds: list[str], answer_sets: list[Sequence[str]], k: int) -> np.ndarray:
    """VQA accuracy of questions with ``k`` answers each (see `batch_accuracy`)."""
    return coded_accuracy(variant, chain.from_iterable(answer_sets), k, preds)


def coded_accuracy(variant: str, answers: Iterable[str], k: int, preds: Sequence[str],
                   order: np.ndarray | None = None) -> np.ndarray:
    """VQA accuracy (`SCORERS`) of ``preds[q]`` against row ``q`` of the human answers, bit for bit,
    computed over integer codes: ``answers`` are k per row, row after row; ``order`` (when given)
    takes the rows in that order (answers read in annotation-file order, predictions in question
    order). Each distinct string is cleaned and normalized once (`_Coder`); the leave-one-out sum of
    vqaEval.py's accuracy loop runs column by column, in its order. No loo_groups: every answer dict
    distinct, as in the official files."""
    coder = _coder(variant)
    codes = coder.cleaned.array(answers).reshape(-1, k)
    if order is not None:
        codes = codes[order]
    if len(codes) != len(preds):
        raise ValueError(f"{len(codes)} rows of answers for {len(preds)} predictions")
    if variant != "official":  # m4c, lmms-eval: both sides always processed
        truth = codes
        pred = coder.cleaned.array(preds)
    else:
        # normalized when the cleaned answers are not all identical (one answer: never)
        differ = (codes != codes[:, :1]).any(axis=1) if k > 1 else np.zeros(len(preds), dtype=bool)
        normalized = coder.normalized(codes[differ].ravel())  # cleaned -> normalized
        truth = np.where(differ[:, None], normalized[codes], codes)
        plain = coder.cleaned.array(preds)
        both = coder.cleaned_normalized.array(preds)
        pred = np.where(differ, both, plain)
    match = truth == pred[:, None]
    total = match.sum(axis=1)
    acc = np.zeros(len(preds))
    for i in range(k):  # loo_accuracy's sum, column by column: the same float operations in the same order
        acc += np.minimum(1, (total - match[:, i]) / 3)
    return acc / k


def vqa_metrics() -> tuple[Metric, ...]:
    return (mean("accuracy", description="VQA soft accuracy: mean over leave-one-out answer subsets of "
                                         "min(1, matches/3)"),)

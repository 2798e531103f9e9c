"""MMBench CircularEval (DESIGN §5): expanding a base TSV into circular copies, grouping rows, and the
group-level hit. Sits in the mmbench task's loader (`circularize`) and its `finalize` (`group_hits`).

Mirrors VLMEvalKit: ``vlmeval/tools.py::CIRCULAR`` for the expansion and
``vlmeval/dataset/utils/multiple_choice.py::mcq_circular_eval`` / ``prefetch_circular_group`` for the
scoring under exact matching (no LLM judge): a group is a hit iff every one of its rows was resolved to
the correct letter; one unresolved or wrong row fails the group. Vanilla accuracy (VLMEvalKit's
``vanilla_0``) is the accuracy of the un-rotated rows alone.
"""

from __future__ import annotations

import string
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from molmo_eval.core.metric import Metric
from molmo_eval.metrics.generic import mean

BASE_OFFSET = 1_000_000  # circular copies are index + k * 1e6; groups are index % 1e6
Row = dict[str, Any]


def rotations(k: int) -> list[str]:
    """Label orders of the k rotations: ABCD, DABC, CDAB, BCDA (``deque.rotate(1)`` repeatedly)."""
    labels = string.ascii_uppercase[:k]
    out, dq = [labels], deque(labels)
    for _ in range(k - 1):
        dq.rotate(1)
        out.append("".join(dq))
    return out


def _letters_only(s: str) -> str:
    """Every character that is not an ASCII letter or a space becomes a space (CIRCULAR's ``proc_str``)."""
    return "".join(c if c in string.ascii_letters or c == " " else " " for c in s)


def is_abnormal(choices: Mapping[str, str]) -> bool:
    """CIRCULAR's ``abnormal_entry``: an option whose words name two or more option labels, or an option
    that *is* a label (``text in string.ascii_uppercase``, a substring test: "A", "BC"...)."""
    has_label = False
    for text in choices.values():
        if len({w for w in _letters_only(text).split() if w in choices}) > 1:
            return True
        if text in string.ascii_uppercase:
            has_label = True
    return has_label


def n_options(row: Mapping[str, Any], option_columns: Sequence[str]) -> int:
    """Number of leading present options; a gap (C missing, D present) is an error, as in CIRCULAR."""
    n = 0
    for j, col in enumerate(option_columns):
        if row.get(col) is not None:
            if j != n:
                raise ValueError(f"option {col} is present but option {option_columns[n]} is missing")
            n = j + 1
    return n


def circularize(rows: Sequence[Row], option_columns: Sequence[str]) -> list[Row]:
    """Mirror CIRCULAR: every normal row with k >= 2 options gets k - 1 rotated copies with index
    ``index + i * OFFSET`` (OFFSET = 1e6, times 10 until it exceeds every index), ``g_index``, image = the
    base index, options moved so that new label ``rot[j]`` holds old option ``labels[j]`` and the answer
    mapped likewise. Abnormal rows (labels inside options, no options, answer not among the options) are
    kept once. Rows are returned in CIRCULAR's order; values stay as they were (str or None)."""
    offset = BASE_OFFSET
    while rows and max(int(r["index"]) for r in rows) >= offset:
        offset *= 10
    groups: dict[Any, list[Row]] = {}
    for r in rows:
        k = n_options(r, option_columns)
        if k == 1:
            raise ValueError(f"row {r['index']} has a single option")
        choices = {c: r[c] for c in option_columns[:k]}
        answer = r.get("answer")
        if answer is None:
            raise ValueError(f"row {r['index']} has no answer")
        if k == 0 or is_abnormal(choices) or len(answer) > 1 or answer not in string.ascii_uppercase[:k]:
            groups.setdefault("abnormal", []).append(r)
        else:
            groups.setdefault(k, []).append(r)
    out: list[Row] = []
    for k, members in groups.items():
        if k == "abnormal":
            out.extend({**r, "g_index": str(r["index"])} for r in members)
            continue
        rots = rotations(k)
        for i, rot in enumerate(rots):
            cmap = dict(zip(rots[0], rot, strict=True))
            for r in members:
                if i == 0:
                    out.append({**r, "g_index": str(r["index"])})
                    continue
                new = dict(r)
                idx = int(int(r["index"]) + offset * i)
                new["index"], new["g_index"] = str(idx), str(idx % offset)
                new["image"] = new["g_index"]
                new["answer"] = cmap[r["answer"]]
                for src, dst in cmap.items():
                    new[dst] = r[src]
                out.append(new)
    return out


def group_of(index: int, g_index: int | None = None) -> int:
    """The circular group of a row: its ``g_index`` column when the file has one, else ``index % 1e6``."""
    return int(g_index) if g_index is not None else int(index % BASE_OFFSET)


def group_hits(groups: Sequence[str], is_main: Sequence[bool], correct: Sequence[float] | np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the circular hit of its group (on the group's un-rotated row; NaN on the others) and the
    vanilla hit (the row's own correctness on un-rotated rows; NaN on the others)."""
    values = np.asarray(correct, dtype=np.float64)
    worst: dict[str, float] = {}
    for g, c in zip(groups, values, strict=True):
        worst[g] = min(worst.get(g, 1.0), 0.0 if np.isnan(c) else float(c))
    main = np.asarray(is_main, dtype=bool)
    circular = np.where(main, [worst[g] for g in groups], np.nan)
    vanilla = np.where(main, np.nan_to_num(values, nan=0.0), np.nan)
    return circular, vanilla


def metrics() -> tuple[Metric, ...]:
    return (
        mean("circular_accuracy", "circular",
             description="CircularEval: a question counts only if every rotation of its options is answered "
                         "correctly (one value per group, on its un-rotated row)"),
        mean("vanilla_accuracy", "vanilla", description="accuracy on the un-rotated rows only"),
    )

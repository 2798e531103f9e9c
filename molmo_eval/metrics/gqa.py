"""GQA scoring (score, finalize and aggregate stages of the gqa task), after GQA's ``eval.py``.

Per question (balanced questions only, ``isBalanced``): ``accuracy`` is an exact string match of the
prediction with ``answer``; ``binary`` / ``open`` split it by ``types.structural == "query"`` (open)
or not (binary). Across questions (`consistency_column`, `distribution_columns`, computed in
`Task.finalize`):

- ``consistency`` (eval.py ``--consistency``): for each balanced question answered correctly whose
  ``entailed`` list names other questions, the accuracy over those entailed questions; the metric is
  the mean of that over such questions. Entailed ids absent from the loaded file are skipped (eval.py
  would raise KeyError);
- ``distribution``: eval.py's chi-square between the gold and predicted answer histograms of each
  ``groups.global`` group (balanced questions with a group), weighted by group size, then / 100.
  Lower is better. Stored as a fraction like every metric, i.e. divided by another 100: a report that
  renders fractions as percentages shows exactly eval.py's printed number.

Matching rule by variant: ``official`` exact; ``llava`` prediction ``rstrip(".").lower()`` (LLaVA's
convert_gqa_for_eval.py) then exact; ``lmms-eval`` both sides lower-cased with ASCII punctuation
removed (its ``exact_match`` with ignore_case and ignore_punctuation), after lmms-eval's task pipeline
has stripped the prediction (``ConfigurableTask.process_results`` strips every generation first).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import numpy as np

from molmo_eval.core.metric import Columns, Direction, Metric
from molmo_eval.metrics.generic import mean, safe_div

_PUNCT_TABLE = str.maketrans("", "", string.punctuation)


def prediction_key(variant: str, prediction: str) -> str:
    """The prediction string eval.py compares and counts, after the variant's preprocessing."""
    if variant == "llava":
        return prediction.rstrip(".").lower()
    if variant == "lmms-eval":
        return prediction.strip().lower().translate(_PUNCT_TABLE)
    return prediction


def gold_key(variant: str, gold: str) -> str:
    """The gold answer string under the variant's matching rule."""
    if variant == "lmms-eval":
        return gold.lower().translate(_PUNCT_TABLE)
    return gold


def answer_type(structural: str) -> str:
    """eval.py: "open" for ``query`` questions, "binary" for everything else."""
    return "open" if structural == "query" else "binary"


def consistency_column(ids: Sequence[str], balanced: Sequence[bool], correct: Sequence[bool],
                       entailed: Sequence[Sequence[str]]) -> np.ndarray:
    """Per question: mean correctness of its entailed questions when it is balanced, correct and has
    any (other than itself, present in ``ids``); NaN otherwise. Mirrors eval.py ``updateConsistency``."""
    index = {qid: i for i, qid in enumerate(ids)}
    out = np.full(len(ids), np.nan)
    for i, qid in enumerate(ids):
        if not (balanced[i] and correct[i]):
            continue
        others = [index[e] for e in entailed[i] if e != qid and e in index]
        if others:
            out[i] = sum(1.0 if correct[j] else 0.0 for j in others) / len(others)
    return out


def distribution_columns(groups: Sequence[str | None], golds: Sequence[str], preds: Sequence[str | None],
                         balanced: Sequence[bool]) -> dict[str, np.ndarray]:
    """Integer codes (as floats, NaN where a question does not count) for the distribution metric:
    ``dist_gold`` codes the (group, gold answer) pair, ``dist_pred`` the (group, prediction) pair or -1
    when that pair is no gold pair (eval.py only sums over gold answers), ``dist_group`` the group."""
    pairs: dict[tuple[str, str], int] = {}
    group_ids: dict[str, int] = {}
    n = len(golds)
    gold_c, pred_c, group_c = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    counted = [i for i in range(n) if balanced[i] and groups[i] is not None]
    for i in counted:
        g = groups[i]
        assert g is not None
        group_c[i] = group_ids.setdefault(g, len(group_ids))
        gold_c[i] = pairs.setdefault((g, golds[i]), len(pairs))
    for i in counted:
        p = preds[i]
        pred_c[i] = -1 if p is None else pairs.get((groups[i], p), -1)  # type: ignore[arg-type]
    return {"dist_gold": gold_c, "dist_pred": pred_c, "dist_group": group_c}


def chi_square_distribution(cols: Columns) -> np.ndarray | float:
    """eval.py ``chiSquare(gold, predicted) / 100`` / 100 over the last axis of the code columns."""
    gold, pred, grp = (np.asarray(cols[k], dtype=float) for k in ("dist_gold", "dist_pred", "dist_group"))
    squeeze = gold.ndim == 1
    gold, pred, grp = np.atleast_2d(gold), np.atleast_2d(pred), np.atleast_2d(grp)
    b = gold.shape[0]
    valid = ~np.isnan(gold)
    if not valid.any():
        return np.full(b, np.nan) if not squeeze else float("nan")
    k = int(max(np.nanmax(gold), np.nanmax(np.where(valid, pred, -1)))) + 1
    g = int(np.nanmax(grp)) + 1
    rows = np.broadcast_to(np.arange(b)[:, None], gold.shape)
    r, gc, gg = rows[valid], gold[valid].astype(np.int64), grp[valid].astype(np.int64)
    e = np.bincount(r * k + gc, minlength=b * k).reshape(b, k).astype(float)
    pv = valid & (pred >= 0)
    o = np.bincount(rows[pv] * k + pred[pv].astype(np.int64), minlength=b * k).reshape(b, k).astype(float)
    pair_group = np.zeros(k, dtype=np.int64)
    pair_group[gc] = gg  # a pair's group is fixed by its code
    with np.errstate(divide="ignore", invalid="ignore"):
        contrib = np.where(e > 0, (o - e) ** 2 / np.where(e > 0, e, 1), 0.0)
    flat_group = (np.arange(b)[:, None] * g + pair_group[None, :]).ravel()
    score = np.bincount(flat_group, weights=contrib.ravel(), minlength=b * g).reshape(b, g)
    overall = np.bincount(flat_group, weights=e.ravel(), minlength=b * g).reshape(b, g)
    value = safe_div((score * overall).sum(axis=1), overall.sum(axis=1))
    value = np.asarray(value) / 100.0 / 100.0
    return float(value[0]) if squeeze else value


def gqa_metrics() -> tuple[Metric, ...]:
    return (
        mean("accuracy", description="exact-match accuracy over balanced questions"),
        mean("binary", description="accuracy over balanced yes/no-style (non-query) questions"),
        mean("open", description="accuracy over balanced open (query) questions"),
        mean("consistency", description="accuracy over the entailed questions of correctly answered ones"),
        Metric("distribution", chi_square_distribution, count="dist_gold", direction=Direction.LOWER,
               description="chi-square of gold vs predicted answer histograms per global group "
                           "(eval.py value / 100; lower is better)"),
    )


"""Per-sample score columns of a run, keyed by sample uid: ``scores.json`` beside ``samples.jsonl``.

The runner (and ``molmo-eval score --run``) writes ``scores.json``, a derived columnar index of
``samples.jsonl`` that gates and reports read in a fraction of the time. Per task it holds::

    {"uid": [...], "scores": {"<column>": [float | null, ...]}, "labels": {"<column>": [str, ...]}}

``scores`` are the float columns and ``labels`` the categorical ones (fields, meta, split) that
`molmo_eval.metrics.stats.columns_from_lines` builds from ``samples.jsonl``, so a task's metrics
compute the same values from either form. The gate's baseline file (`molmo_eval.gate.baseline`)
stores its samples in the same form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from molmo_eval.core.errors import DataError
from molmo_eval.metrics.stats import columns_from_lines
from molmo_eval.run.records import SAMPLES, SCORES, atomic_write, dumps, iter_samples

__all__ = ["SCORES", "TaskRows", "rows_from_lines", "rows_from_samples", "scores_document", "scores_text",
           "task_entry", "task_json", "task_rows_from_json", "write_scores"]


@dataclass(frozen=True, eq=False)
class TaskRows:
    """One task's per-sample columns, rows in the order of ``uids``."""

    uids: np.ndarray  # (n,) object: "task/split/id"
    cols: Mapping[str, np.ndarray]  # float score columns and object label columns, each (n,)

    def __len__(self) -> int:
        return len(self.uids)


def rows_from_samples(run_dir: Path) -> dict[str, TaskRows]:
    """Per-task columns from a run's ``samples.jsonl`` (every task that has lines)."""
    return rows_from_lines(iter_samples(run_dir), run_dir / SAMPLES)


def rows_from_lines(lines: Iterable[Mapping[str, Any]], where: Path | str = SAMPLES) -> dict[str, TaskRows]:
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for i, line in enumerate(lines, 1):
        uid = line.get("uid") if isinstance(line, Mapping) else None
        if not isinstance(uid, str):
            raise DataError("sample line has no uid", path=where, record=f"at line {i}", field="uid")
        task = line.get("task") or uid.split("/", 1)[0]
        by_task.setdefault(str(task), []).append(line)
    out = {}
    for t, task_lines in by_task.items():
        try:
            cols = columns_from_lines(task_lines)
        except (TypeError, ValueError) as e:  # a score that is not a number
            raise DataError(f"per-sample scores of task {t!r} are not numbers ({e})", path=where,
                            field="scores") from None
        out[t] = TaskRows(np.array([ln["uid"] for ln in task_lines], dtype=object), cols)
    return out


def scores_text(lines: Sequence[Mapping[str, Any]]) -> str:
    """``scores.json``: every task's per-sample score columns, in the baseline file's ``samples`` form.

    A derived index of ``samples.jsonl`` that gates and reports read in a fraction of the time."""
    return scores_document([task_entry(t, r) for t, r in rows_from_lines(lines).items()])


def task_entry(task: str, rows: TaskRows) -> str:
    """One task's part of ``scores.json`` (the runner writes them as its tasks finish)."""
    return f"  {dumps(task)}: {dumps(task_json(rows))}"


def scores_document(entries: Sequence[str]) -> str:
    return "{\n" + ",\n".join(entries) + "\n}\n"


def write_scores(run_dir: Path, lines: Sequence[Mapping[str, Any]]) -> Path:
    atomic_write(run_dir / SCORES, scores_text(lines))
    return run_dir / SCORES


def task_rows_from_json(path: Path, task: str, d: Any) -> TaskRows:
    where = f"samples.{task}"
    if not isinstance(d, dict) or not isinstance(d.get("uid"), list):
        raise DataError("expected {uid, scores, labels}", path=path, field=where)
    uids = np.array(d["uid"], dtype=object)
    cols: dict[str, np.ndarray] = {}
    for kind, dtype in (("scores", np.float64), ("labels", object)):
        block = d.get(kind, {})
        if not isinstance(block, dict):
            raise DataError("expected an object of columns", path=path, field=f"{where}.{kind}")
        for name, values in block.items():
            if not isinstance(values, list) or len(values) != len(uids):
                raise DataError(f"column has {len(values) if isinstance(values, list) else 'no'} values "
                                f"for {len(uids)} uids", path=path, field=f"{where}.{kind}.{name}")
            try:
                cols[name] = np.array(values, dtype=dtype)
            except (TypeError, ValueError):
                raise DataError("column holds non-numeric values", path=path,
                                field=f"{where}.{kind}.{name}") from None
    return TaskRows(uids, cols)


def task_json(rows: TaskRows) -> dict[str, Any]:
    scores = {k: v.tolist() for k, v in rows.cols.items() if v.dtype.kind == "f"}  # NaN -> null
    labels = {k: [str(x) for x in v] for k, v in rows.cols.items() if v.dtype.kind != "f"}
    return {"uid": rows.uids.tolist(), "scores": scores, "labels": labels}

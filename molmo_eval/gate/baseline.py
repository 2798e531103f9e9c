"""The two sides of a gate comparison read from disk, and the committed baseline file format.

Sits between `molmo_eval.run.records` (run directories) and `molmo_eval.gate.verdicts` (pure
comparison). A side is a `RunData`: the RunRecord plus, per task, the per-sample score columns keyed
by sample uid. It is read from any of

- a run directory (``results.json`` + ``scores.json`` or ``samples.jsonl``), or the path of its
  ``results.json``;
- a **baseline file**: one self-contained JSON document, written atomically by
  ``molmo-eval gate --update-baseline``, meant to be committed::

      {"molmo_eval_baseline": 1,            # format version
       "source": "<run it was made from>", "created": "<ISO 8601 UTC>",
       "record": {...},                     # RunRecord.to_json(), unchanged
       "samples": {"<task>": {"uid": [...],                       # one entry per sample
                              "scores": {"<column>": [float | null, ...]},
                              "labels": {"<column>": [str, ...]}}} | null}

  ``samples`` has the form of a run's ``scores.json`` (`molmo_eval.run.scores`), so a task's
  metrics compute the same values from either. Prompts, outputs and targets are left out: the file stays small
  enough to commit (a few MB per 100,000 samples). ``samples`` is null when the run was made without
  a per-sample log; such a baseline cannot gate (every verdict is recomputed from per-sample scores).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from molmo_eval.core import jsonio
from molmo_eval.core.errors import ConfigError, DataError
from molmo_eval.core.types import RunRecord
from molmo_eval.run.records import (
    RESULTS,
    atomic_write,
    check_counts,
    dumps,
    read_record,
    record_from_json,
    samples_path,
    verify_files,
)
from molmo_eval.run.scores import SCORES, TaskRows, rows_from_samples, task_json, task_rows_from_json

FORMAT_KEY = "molmo_eval_baseline"
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class RunData:
    """One side of a comparison. ``rows`` is None when the run has no per-sample log."""

    label: str  # the path it was read from, for messages
    record: RunRecord
    rows: Mapping[str, TaskRows] | None


def load(path: Path | str) -> RunData:
    """Read a run directory, a ``results.json`` path or a baseline file (see the module docstring).

    A run folder whose files disagree with its record (`molmo_eval.run.records.verify_files`), or
    whose per-sample rows are not the record's samples (another count per task), is refused with a
    DataError naming the file: the gate never compares what it cannot trust."""
    p = Path(path)
    if p.is_file():
        data = _read_json(p)
        if isinstance(data, dict) and FORMAT_KEY in data:
            return _from_baseline(p, data)
    record = read_record(p)  # DataError when neither a run directory nor a record
    run_dir = p if p.is_dir() else p.parent
    verify_files(run_dir, record)
    if (run_dir / SCORES).is_file():  # the columnar index the runner writes beside samples.jsonl
        data = _read_json(run_dir / SCORES)
        if not isinstance(data, dict):
            raise DataError("expected an object keyed by task", path=run_dir / SCORES)
        rows = {t: task_rows_from_json(run_dir / SCORES, t, v) for t, v in data.items()}
        check_counts(record, {t: len(r) for t, r in rows.items()}, run_dir / SCORES)
        return RunData(str(p), record, rows)
    where = samples_path(run_dir)
    if where is None:
        return RunData(str(p), record, None)
    rows = rows_from_samples(run_dir)
    check_counts(record, {t: len(r) for t, r in rows.items()}, where)
    return RunData(str(p), record, rows)


def _read_json(path: Path) -> Any:
    try:
        return jsonio.loads(path.read_bytes(), path=path)
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path=path) from None


def _from_baseline(path: Path, data: dict[str, Any]) -> RunData:
    version = data.get(FORMAT_KEY)
    if type(version) is not int or version > FORMAT_VERSION:
        raise DataError(f"baseline format {version!r} is not readable by this molmo-eval", path=path,
                        field=FORMAT_KEY, expected=f"an integer <= {FORMAT_VERSION}")
    record = record_from_json(data.get("record"), path, field_prefix="record.")
    samples = data.get("samples")
    if samples is None:
        return RunData(str(path), record, None)
    if not isinstance(samples, dict):
        raise DataError("samples must be an object keyed by task", path=path, field="samples")
    rows = {t: task_rows_from_json(path, t, v) for t, v in samples.items()}
    check_counts(record, {t: len(r) for t, r in rows.items()}, path)
    return RunData(str(path), record, rows)


# --- writing ---------------------------------------------------------------------------------

def write_baseline(path: Path | str, data: RunData) -> Path:
    """Write ``data`` as a baseline file at ``path``, atomically (a crash leaves the old one)."""
    p = check_writable(path)
    atomic_write(p, baseline_text(data))
    return p


def check_writable(path: Path | str) -> Path:
    """``path`` if a baseline file may be written there: never a directory or a run's results.json."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"--baseline {p} is a directory; --update-baseline writes a baseline file "
                          f"(e.g. {p / 'baseline.json'}), never into a run directory")
    if p.name == RESULTS:
        raise ConfigError(f"--baseline {p}: refusing to overwrite a run's {RESULTS}; name a baseline file")
    return p


def baseline_text(data: RunData) -> str:
    """The baseline document: the record pretty-printed, then one compact line per task's samples."""
    head = {FORMAT_KEY: FORMAT_VERSION, "source": data.label,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    parts = [f"  {json.dumps(k)}: {dumps(v)}" for k, v in head.items()]
    record = dumps(data.record.to_json(), indent=2)
    parts.append('  "record": ' + record.replace("\n", "\n  "))
    if data.rows is None:
        parts.append('  "samples": null')
    else:
        tasks = [f"    {json.dumps(t)}: {dumps(task_json(r))}" for t, r in data.rows.items()]
        parts.append('  "samples": {\n' + ",\n".join(tasks) + "\n  }")
    return "{\n" + ",\n".join(parts) + "\n}\n"



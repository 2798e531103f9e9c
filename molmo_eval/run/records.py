"""Run directories: ``results.json`` (the RunRecord), ``samples.jsonl``, ``scores.json`` (a columnar
index of the per-sample scores, see `molmo_eval.run.scores`) and ``report.md``.

Written atomically (temporary file in the same folder, fsync, rename), so a crash never leaves a
half-written record, and with the permissions a plain ``open()`` gives (0644 under the usual umask),
not the 0600 of the temporary file: CI artifact uploaders and other users read run folders.
Reports, gates and re-scoring read runs through this module only.

``samples.jsonl`` has one object per sample, in evaluation order::

    {"uid", "task", "split", "id", "prompt", "output": {"text", "points"?, "box"?, "error"?},
     "answer": {"kind", "value", "parse_ok"} | null, "scores": {metric column: float | null},
     "fields": {...}, "meta": {...}, "target": {...}, "error": str | null, "cached": bool}
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import DataError
from molmo_eval.core.types import SCHEMA_VERSION, RunRecord

RESULTS = "results.json"
SAMPLES = "samples.jsonl"
REPORT = "report.md"


def new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the process umask (read from /proc where there
    is one, since setting the umask to read it is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: Path, text: str | Iterable[str]) -> None:
    """Write ``text`` (or an iterable of chunks) to ``path`` atomically, as ``open()`` would create it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600
            os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if isinstance(text, str):
                f.write(text)
            else:
                for chunk in text:
                    f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> null, tuples -> lists, numpy scalars -> Python."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _clean(obj.item())
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    return obj


def _default(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """One-line JSON; NaN and infinities become null (JSON has neither)."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_default)
    except ValueError:  # a NaN somewhere: take the slow, cleaning path
        return json.dumps(_clean(obj), ensure_ascii=False, allow_nan=False)


def write_record(run_dir: Path, record: RunRecord) -> Path:
    path = run_dir / RESULTS
    atomic_write(path, json.dumps(_clean(record.to_json()), indent=2, ensure_ascii=False) + "\n")
    return path


def write_samples(run_dir: Path, lines: Iterable[Mapping[str, Any]]) -> Path:
    path = run_dir / SAMPLES
    atomic_write(path, (dumps(line) + "\n" for line in lines))
    return path


def record_path(run_or_record: Path | str) -> Path:
    p = Path(run_or_record)
    return p / RESULTS if p.is_dir() else p


def read_record(run_or_record: Path | str) -> RunRecord:
    """Read a RunRecord from a run directory or a ``results.json`` file."""
    path = record_path(run_or_record)
    if not path.is_file():
        raise DataError("no run record found", path=path,
                        expected=f"a run directory holding {RESULTS} or the path of such a file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"run record is not valid JSON ({e})", path=path) from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise DataError("not a molmo-eval run record", path=path, field="schema_version")
    if data["schema_version"] > SCHEMA_VERSION:
        raise DataError(f"written by a newer molmo-eval (schema {data['schema_version']})", path=path,
                        field="schema_version", expected=f"<= {SCHEMA_VERSION}")
    try:
        return RunRecord.from_json(data)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"malformed run record ({type(e).__name__}: {e})", path=path) from None


def iter_samples(run_dir: Path | str) -> Iterator[dict[str, Any]]:
    path = Path(run_dir)
    path = path / SAMPLES if path.is_dir() else path.parent / SAMPLES
    if not path.is_file():
        raise DataError("no per-sample log found (was the run made with --log-samples?)", path=path)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"not valid JSON ({e.msg})", path=path, record=f"at line {lineno}") from None


@dataclass(frozen=True)
class Run:
    """A run directory read back: its record and (lazily) its samples."""

    path: Path
    record: RunRecord

    def samples(self, task: str | None = None) -> Iterator[dict[str, Any]]:
        for line in iter_samples(self.path):
            if task is None or line.get("task") == task:
                yield line


def read_run(run_dir: Path | str) -> Run:
    p = Path(run_dir)
    run_path = p if p.is_dir() else p.parent
    return Run(run_path, read_record(p))

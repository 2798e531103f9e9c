"""Run directories: ``results.json`` (the RunRecord), ``samples.jsonl``, ``scores.json`` (a columnar
index of the per-sample scores, see `molmo_eval.run.scores`) and ``report.md``.

Every file is written atomically (temporary file in the same folder, fsync, rename), so a crash never
leaves a half-written file, and with the permissions a plain ``open()`` gives (0644 under the usual
umask), not the 0600 of the temporary file: CI artifact uploaders and other users read run folders.
`molmo_eval.run.rundir` writes the folder as a whole, so it always holds one run. The record lists the
digest, size and (for ``samples.jsonl``) line count of each other file in ``files``; `read_run` refuses
a folder whose files disagree with its record, naming the file.
Reports, gates and re-scoring read runs through this module only.

``samples.jsonl`` has one object per sample, in evaluation order::

    {"uid", "task", "split", "id", "prompt", "output": {"text", "points"?, "box"?, "error"?},
     "answer": {"kind", "value", "parse_ok"} | null, "scores": {metric column: float | null},
     "fields": {...}, "meta": {...}, "target": {...}, "error": str | null, "cached": bool}

(committed records may hold it gzipped as ``samples.jsonl.gz``; readers accept either).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from molmo_eval.core import jsonio
from molmo_eval.core.errors import DataError
from molmo_eval.core.types import SCHEMA_VERSION, RunRecord

RESULTS = "results.json"
SAMPLES = "samples.jsonl"
SAMPLES_GZ = SAMPLES + ".gz"
SCORES = "scores.json"
REPORT = "report.md"
RUN_FILES = (SAMPLES, SAMPLES_GZ, SCORES, REPORT)  # the files a record vouches for, besides itself
STATUSES = ("ok", "partial", "failed")

dumps = jsonio.dumps  # one-line JSON; NaN -> null; lone surrogates escaped


# --- writing ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Staged:
    """A file written under a temporary name beside its final path, with what the record lists."""

    tmp: Path
    path: Path
    entry: dict[str, Any]  # {"sha256", "bytes"(, "lines")}


class StagedFile:
    """A file written chunk by chunk under a temporary name beside ``path`` (``.<name>.<random>.tmp``,
    which `molmo_eval.run.rundir.clean_stale` removes if a run dies), with the mode ``open()`` would
    give it (`new_file_mode`), digested as it is written; `close` fsyncs it and returns the `Staged`
    file for the caller to rename into place, `discard` removes it."""

    def __init__(self, path: Path, *, count_lines: bool = False):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        self.path, self.tmp, self._count = path, Path(tmp), count_lines
        self._f = os.fdopen(fd, "wb")
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; the file gets the mode open() would give it
            os.fchmod(fd, new_file_mode())
        self._h, self.bytes, self.lines = hashlib.sha256(), 0, 0

    def write(self, chunk: str) -> None:
        # JSON text arrives escaped (jsonio); Markdown may carry a lone surrogate from the data
        data = chunk.encode("utf-8", "backslashreplace")
        self._f.write(data)
        self._h.update(data)
        self.bytes += len(data)
        if self._count:
            self.lines += data.count(b"\n")

    def close(self) -> Staged:
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        entry: dict[str, Any] = {"sha256": self._h.hexdigest(), "bytes": self.bytes}
        if self._count:
            entry["lines"] = self.lines
        return Staged(self.tmp, self.path, entry)

    def discard(self) -> None:
        self._f.close()
        remove(self.tmp)


def stage(path: Path, text: str | Iterable[str], *, count_lines: bool = False) -> Staged:
    """Write ``text`` (or an iterable of chunks) to a temporary file beside ``path``, fsync it and
    digest it. `Staged.tmp` is renamed into place by the caller (`atomic_write` does it at once); it has
    the mode ``open()`` would give the file (`new_file_mode`), not mkstemp's 0600."""
    f = StagedFile(path, count_lines=count_lines)
    try:
        for chunk in (text,) if isinstance(text, str) else text:
            f.write(chunk)
        return f.close()
    except BaseException:
        f.discard()
        raise


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
    staged = stage(path, text)
    try:
        os.replace(staged.tmp, path)
    except BaseException:
        remove(staged.tmp)
        raise


def remove(path: Path) -> None:
    """Delete a file that may already be gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def record_text(record: RunRecord) -> str:
    return dumps(record.to_json(), indent=2) + "\n"


def write_record(run_dir: Path, record: RunRecord) -> Path:
    path = run_dir / RESULTS
    atomic_write(path, record_text(record))
    return path


def write_samples(run_dir: Path, lines: Iterable[Mapping[str, Any]]) -> Path:
    path = run_dir / SAMPLES
    atomic_write(path, (dumps(line) + "\n" for line in lines))
    return path


# --- reading the record ----------------------------------------------------------------------

def record_path(run_or_record: Path | str) -> Path:
    p = Path(run_or_record)
    return p / RESULTS if p.is_dir() else p


def read_record(run_or_record: Path | str) -> RunRecord:
    """Read a RunRecord from a run directory or a ``results.json`` file."""
    path = record_path(run_or_record)
    if not path.is_file():
        if path.parent.is_dir() and any((path.parent / n).exists() for n in RUN_FILES):
            raise DataError("incomplete run folder: no run record beside its other files (the run was "
                            "interrupted while its folder was written; run the same command again)", path=path)
        raise DataError("no run record found", path=path,
                        expected=f"a run directory holding {RESULTS} or the path of such a file")
    try:
        data = jsonio.loads(path.read_bytes(), path=path)
    except OSError as e:
        raise DataError(f"cannot read ({e.strerror})", path=path) from None
    return record_from_json(data, path)


def record_from_json(data: Any, path: object, field_prefix: str = "") -> RunRecord:
    """A RunRecord from parsed JSON, or a DataError naming the field that is wrong."""
    def where(name: str) -> str:
        return f"{field_prefix}{name}"

    if not isinstance(data, dict) or "schema_version" not in data:
        raise DataError("not a molmo-eval run record", path=path, field=where("schema_version"))
    version = data["schema_version"]
    if type(version) is not int or version < 1:
        raise DataError(f"has type {type(version).__name__}" if type(version) is not int else f"is {version}",
                        path=path, field=where("schema_version"), expected="an integer >= 1")
    if version > SCHEMA_VERSION:
        raise DataError(f"written by a newer molmo-eval (schema {version})", path=path,
                        field=where("schema_version"), expected=f"<= {SCHEMA_VERSION}")
    if data.get("status") not in STATUSES:
        raise DataError(f"status {data.get('status')!r}", path=path, field=where("status"),
                        expected=" or ".join(repr(s) for s in STATUSES))
    if version >= 2 and not isinstance(data.get("files"), dict):
        raise DataError("missing the digests of the run's files", path=path, field=where("files"),
                        expected=f"an object listing {', '.join(RUN_FILES)} as written")
    if version >= 2:
        _check_lmms_keys(data, path, where)
    try:
        record = RunRecord.from_json(data)
        for name, tr in record.tasks.items():
            if tr.n < 0 or tr.n_failed < 0:
                raise ValueError(f"task {name}: n = {tr.n}, n_failed = {tr.n_failed}")
        return record
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"malformed run record ({type(e).__name__}: {str(e)[:200]})", path=path) from None


def _check_lmms_keys(data: dict[str, Any], path: object, where: Any) -> None:
    """The keys written for lmms-eval readers (schema 2), each of the shape the readers rely on (the
    gate reads metric directions from ``configs``). Records written before them lack them: allowed."""
    def bad(name: str, got: Any, expected: str) -> DataError:
        return DataError(f"is {str(got)[:80]!r}", path=path, field=where(name), expected=expected)

    for name in ("package_versions", "versions", "higher_is_better", "n-shot", "configs", "n-samples"):
        if name in data and not isinstance(data[name], dict):
            raise bad(name, data[name], "an object keyed by task (or by package)")
    ws = data.get("world_size", 1)
    if type(ws) is not int or ws < 1:
        raise bad("world_size", ws, "a positive integer")
    for task, n in (data.get("n-samples") or {}).items():
        if not isinstance(n, dict) or any(type(n.get(k, 0)) is not int or n.get(k, 0) < 0
                                          for k in ("original", "effective")):
            raise bad(f"n-samples.{task}", n, '{"original": int >= 0, "effective": int >= 0}')
    for task, cfg in (data.get("configs") or {}).items():
        if not isinstance(cfg, dict):
            raise bad(f"configs.{task}", cfg, "an object")
        metrics = cfg.get("metric_list", [])
        if not isinstance(metrics, list) or not all(
                isinstance(m, dict) and isinstance(m.get("metric"), str)
                and m.get("higher_is_better") in (True, False, None) for m in metrics):
            raise bad(f"configs.{task}.metric_list", metrics,
                      'a list of {"metric": name, "higher_is_better": true, false or null}')


# --- the folder agrees with its record ---------------------------------------------------------

def _open_text(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")  # type: ignore[return-value]


def content_entry(path: Path, *, count_lines: bool = False) -> dict[str, Any]:
    """What `stage` lists for a file, computed from the file (a ``.gz`` file: its decompressed content)."""
    h, size, lines = hashlib.sha256(), 0, 0
    try:
        with _open_text(path) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
                if count_lines:
                    lines += chunk.count(b"\n")
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read ({e})", path=path) from None
    entry: dict[str, Any] = {"sha256": h.hexdigest(), "bytes": size}
    if count_lines:
        entry["lines"] = lines
    return entry


def samples_path(run_dir: Path) -> Path | None:
    """``samples.jsonl`` of a run folder, or its gzipped form, or None."""
    for name in (SAMPLES, SAMPLES_GZ):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def verify_files(run_dir: Path, record: RunRecord) -> None:
    """Refuse (DataError naming the file) a folder whose files are not the ones its record lists:
    a file of another run beside the record, a truncated, extended or edited file. Files the record
    lists may be missing (a reader that needs one says so); a gzipped ``samples.jsonl`` is compared by
    its content. Records of schema 1 carry no digests and are not checked here."""
    if record.schema_version < 2:
        return
    files = record.files
    for name in (SAMPLES, SCORES, REPORT):
        path = samples_path(run_dir) if name == SAMPLES else run_dir / name
        if path is None or not path.exists():
            continue
        entry = files.get(name)
        if entry is None:
            raise DataError(f"is not a file of the run {record.run_id} recorded in {RESULTS} (the folder "
                            "mixes runs)", path=path)
        if not path.is_file():
            raise DataError("is not a regular file", path=path)
        if path.suffix != ".gz" and path.stat().st_size != entry.get("bytes"):
            raise DataError(f"has {path.stat().st_size} bytes where {RESULTS} of run {record.run_id} "
                            f"lists {entry.get('bytes')}: the file belongs to another run or was changed",
                            path=path)
        got = content_entry(path)
        if got["sha256"] != entry.get("sha256") or got["bytes"] != entry.get("bytes"):
            raise DataError(f"does not match the digest in {RESULTS} of run {record.run_id}: the file "
                            "belongs to another run or was changed", path=path)


def check_counts(record: RunRecord, counts: Mapping[str, int], path: Path) -> None:
    """Per-sample rows of each task (``counts``, read from ``path``) must be the record's ``n``."""
    for task, n in counts.items():
        if task not in record.tasks:
            raise DataError(f"holds {n} samples of task {task!r}, which {RESULTS} of run {record.run_id} "
                            "does not have", path=path, field="task")
    for task, tr in record.tasks.items():
        if counts.get(task, 0) != tr.n:
            raise DataError(f"holds {counts.get(task, 0)} samples of task {task!r} where {RESULTS} of run "
                            f"{record.run_id} says n = {tr.n}", path=path)


# --- samples -----------------------------------------------------------------------------------

def check_sample_line(line: Any, path: Path, lineno: int) -> dict[str, Any]:
    """A samples.jsonl line with the fields every reader relies on, or a DataError naming the field."""
    at = f"at line {lineno}"
    if not isinstance(line, dict):
        raise DataError("record is not an object", path=path, record=at, expected="a JSON object")
    for name in ("uid", "task", "split"):
        if not isinstance(line.get(name), str):
            raise DataError("missing field" if name not in line else f"has type {type(line[name]).__name__}",
                            path=path, record=at, field=name, expected="a string")
    sid = line.get("id")
    if type(sid) not in (str, int):
        raise DataError("missing field" if "id" not in line else f"has type {type(sid).__name__}",
                        path=path, record=at, field="id", expected="a string or integer id")
    if line["uid"] != f"{line['task']}/{line['split']}/{sid}":
        raise DataError(f"uid {line['uid']!r} is not task/split/id", path=path, record=at, field="uid")
    for name, kinds in (("output", (dict, type(None))), ("scores", (dict, type(None))),
                        ("error", (str, type(None))), ("target", (dict, type(None))),
                        ("meta", (dict, type(None))), ("prompt_fields", (dict, type(None))),
                        ("fields", (dict, type(None)))):
        if not isinstance(line.get(name), kinds):
            raise DataError(f"has type {type(line[name]).__name__}", path=path, record=at, field=name,
                            expected="an object" if dict in kinds else "a string or null")
    scores = line.get("scores") or {}
    bad = next((k for k, v in scores.items() if v is not None and (isinstance(v, bool) or
                                                                  not isinstance(v, (int, float)))), None)
    if bad is not None:
        raise DataError(f"score {bad!r} is {scores[bad]!r}", path=path, record=at, field="scores",
                        expected="numbers or null")
    out = line.get("output")
    if out is not None and not isinstance(out.get("text", ""), str):
        raise DataError("has a non-text output", path=path, record=at, field="output.text")
    size = line.get("image_size")
    if size is not None and not (isinstance(size, list) and len(size) == 2
                                 and all(type(v) is int and v > 0 for v in size)):
        raise DataError(f"image_size {size!r}", path=path, record=at, field="image_size",
                        expected="[width, height] positive integers or null")
    return line


def iter_samples(run_dir: Path | str) -> Iterator[dict[str, Any]]:
    """The lines of a run's ``samples.jsonl`` (or ``samples.jsonl.gz``), each checked."""
    p = Path(run_dir)
    folder = p if p.is_dir() else p.parent
    path = samples_path(folder)
    if path is None:
        raise DataError("no per-sample log found (was the run made with --log-samples?)", path=folder / SAMPLES)
    try:
        with _open_text(path) as f:
            for lineno, raw in enumerate(f, 1):
                if raw.strip():
                    yield check_sample_line(jsonio.loads(raw, path=path, record=f"at line {lineno}"), path, lineno)
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read ({e})", path=path) from None


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
    """A run folder (or its ``results.json``) whose files agree with its record (`verify_files`)."""
    p = Path(run_dir)
    run_path = p if p.is_dir() else p.parent
    record = read_record(p)
    verify_files(run_path, record)
    return Run(run_path, record)

"""A run folder holds one run (DESIGN §7): checked before the run starts, written as a unit after it.

Before any sample is generated, `check_output_path` refuses what would fail only at the end: an
output path that is a file, a parent that is not a writable folder, and a folder that holds another
run. "Another run" is a finished run of a different evaluation (other tasks, model, model arguments,
splits, variants, data, limit, seed, prompt style, generation settings (--gen-kwargs), bootstrap, or
another scored prediction file); the same command run again is the same run (it resumes from the
cache, retries failed samples and replaces the folder's files), so only ``--overwrite`` lets a
different evaluation replace a run. Leftover temporary files of an earlier, interrupted write are
removed.

`write_run` writes the folder in the "clear first" way, with everything staged before anything is
cleared: every new file is written and fsynced under a temporary name, then the old
``results.json`` is removed, the other files are renamed into place (old run files the new run does
not write are removed) and the new ``results.json``, which lists the digests of the others, is
renamed in last. A kill at any moment leaves either the old run whole, or a folder without a record
(which every reader refuses as incomplete and the same command rewrites from the cache), or the
new run whole — never the record of one run beside the files of another.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError, DataError, MolmoEvalError
from molmo_eval.core.types import SCHEMA_VERSION, RunRecord
from molmo_eval.run.records import (
    REPORT,
    RESULTS,
    RUN_FILES,
    SAMPLES,
    SCORES,
    Staged,
    dumps,
    read_record,
    record_text,
    remove,
    stage,
)
from molmo_eval.run.scores import scores_text

# the configuration keys that say what was evaluated (the others say how: batch size, cache, device...)
IDENTITY_KEYS = ("tasks", "model", "model_args", "limit", "seed", "data_root", "data_dirs", "splits",
                 "variants", "prompt_style", "gen_kwargs", "bootstrap", "predictions")


def identity(config: Mapping[str, Any]) -> dict[str, Any]:
    # gen_kwargs: a record written before --gen-kwargs existed ran with none
    return {k: config.get(k) or {} if k == "gen_kwargs" else config.get(k) for k in IDENTITY_KEYS}


def check_output_path(path: Path, config: Mapping[str, Any], *, overwrite: bool,
                      flag: str = "--output-path") -> None:
    """Refuse, before anything runs, an output path the run could not or should not be written to."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a folder (a run folder holds {RESULTS}, "
                          f"{SAMPLES}, ...)")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, so the folder cannot be created")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {parent} is not writable")
    odd = [n for n in (RESULTS, *RUN_FILES) if (path / n).exists() and not (path / n).is_file()]
    if odd:  # never replaced, not even with --overwrite: it is not a file this harness wrote
        raise ConfigError(f"{flag} {path}: {odd[0]} is not a regular file; move it away")
    if overwrite or not (path / RESULTS).exists():
        return
    try:
        old = read_record(path)
    except DataError as e:
        raise ConfigError(f"{flag} {path} holds a run record that cannot be read ({e}); pass --overwrite "
                          "to replace it, or choose another folder") from None
    if identity(old.config) != identity(config):
        was, now = identity(old.config), identity(config)
        differ = [k for k in IDENTITY_KEYS if was[k] != now[k]]
        raise ConfigError(
            f"{flag} {path} holds another run ({old.run_id}: model {old.model.name}, tasks "
            f"{', '.join(old.tasks) or '-'}, created {old.created}; it differs in {', '.join(differ)}); "
            "pass --overwrite to replace it, or choose a new folder for the new run")


def clean_stale(path: Path) -> list[Path]:
    """Remove temporary files that an interrupted write left in a run folder; returns them."""
    if not path.is_dir():
        return []
    gone = []
    for name in (RESULTS, *RUN_FILES):
        for tmp in path.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
                gone.append(tmp)
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                pass
    return gone


class FolderWriteError(MolmoEvalError):
    """The run folder could not be written (a full disk, a folder removed under the run): exit 1; every
    output is in the response cache, so the same command finishes the job."""

    exit_code = 1


def write_run(run_dir: Path, record: RunRecord, lines: Sequence[Mapping[str, Any]] | None,
              report: str, *, staged: Sequence[Staged] = ()) -> RunRecord:
    """Write a run folder (``lines`` None: no per-sample log) as a unit; returns the record as written,
    with the digests of the folder's files. ``staged``: run files already staged in the folder (the
    runner's samples.jsonl and scores.json, written as its tasks finished); renamed in with the rest,
    or removed if the folder cannot be written."""
    with writing(f"the run folder {run_dir}"):
        return _write_run(run_dir, record, lines, report, list(staged))


@contextmanager
def writing(what: str) -> Iterator[None]:
    """An OSError (a full disk, a folder removed under the run) while writing ``what`` becomes a
    `FolderWriteError`: one clear line, exit 1, and the same command finishes from the cache."""
    try:
        yield
    except OSError as e:
        raise FolderWriteError(f"cannot write {what} ({e.strerror or e}); the model's outputs are in the "
                               "response cache: fix this and run the same command again") from e


def _write_run(run_dir: Path, record: RunRecord, lines: Sequence[Mapping[str, Any]] | None,
               report: str, staged: list[Staged]) -> RunRecord:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if lines is not None:
            staged.append(stage(run_dir / SAMPLES, (dumps(line) + "\n" for line in lines), count_lines=True))
            staged.append(stage(run_dir / SCORES, scores_text(lines)))
        staged.append(stage(run_dir / REPORT, report))
        record = replace(record, files={s.path.name: s.entry for s in staged}, schema_version=SCHEMA_VERSION)
        staged.append(stage(run_dir / RESULTS, record_text(record)))
        _swap_in(run_dir, staged)
    except BaseException:
        for s in staged:
            remove(s.tmp)
        raise
    return record


def refresh_run(run_dir: Path, record: RunRecord, report: str, samples: str | None) -> RunRecord:
    """Rewrite a finished run's folder for a re-run that reused it (`molmo_eval.run.reuse`): a new
    ``samples.jsonl`` when ``samples`` is given, the report and the record; the other files the old
    record lists stay as they are. The same order as `write_run`, so a kill leaves either run whole
    or a folder without a record."""
    staged: list[Staged] = []
    with writing(f"the run folder {run_dir}"):
        try:
            if samples is not None:
                staged.append(stage(run_dir / SAMPLES, samples, count_lines=True))
            staged.append(stage(run_dir / REPORT, report))
            files = {**{k: dict(v) for k, v in record.files.items()}, **{s.path.name: s.entry for s in staged}}
            record = replace(record, files=files, schema_version=SCHEMA_VERSION)
            staged.append(stage(run_dir / RESULTS, record_text(record)))
            _swap_in(run_dir, staged, keep=set(files))
        except BaseException:
            for s in staged:
                remove(s.tmp)
            raise
    return record


def _swap_in(run_dir: Path, staged: Sequence[Staged], keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Old record out, old files out or over (those named in ``keep`` stay), new record in last
    (``staged`` ends with it)."""
    remove(run_dir / RESULTS)
    _fsync_dir(run_dir)
    new = {s.path.name for s in staged} | keep
    for name in RUN_FILES:
        if name not in new:
            remove(run_dir / name)
    for s in staged:
        os.replace(s.tmp, s.path)
    _fsync_dir(run_dir)


def _fsync_dir(path: Path) -> None:
    """Make renames in ``path`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

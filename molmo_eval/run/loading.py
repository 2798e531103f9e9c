"""One split of a task read for a run or a re-score: `Task.load` plus the checks every task gets.

Each plugin validates its own files field by field (`molmo_eval.data.validate`); this is the floor
under all of them, built-in or third-party: a split must hold at least one sample, sample ids must
be unique within it (the docs promise "duplicate ids are refused"), and a loader that fails in any
other way still gives a `DataError` naming the task and its files (exit 2; ``--debug`` shows the
traceback), never a crash in the middle of the harness.
"""

from __future__ import annotations

from pathlib import Path

from molmo_eval.core.errors import DataError, MolmoEvalError
from molmo_eval.core.heap import gc_paused
from molmo_eval.core.task import Task
from molmo_eval.core.types import Sample
from molmo_eval.data.files import file_digest


def load_split(task: Task, data_dir: Path, split: str, *, digests: bool = True
               ) -> tuple[list[Sample], dict[str, str]]:
    """The samples of ``split`` and the sha256 of its annotation files (name -> digest; none when
    ``digests`` is False: hashing VQAv2's 170 MB of annotations is wasted where no record lists it)."""
    files = task.data_files(data_dir, split)
    where = files[0] if len(files) == 1 else data_dir
    try:
        with gc_paused():  # a loader builds millions of acyclic objects (`molmo_eval.core.heap`)
            samples = task.load(data_dir, split)
    except MolmoEvalError:
        raise
    except Exception as e:  # the floor under every loader: never a traceback for bad data
        raise DataError(f"task {task.name!r} could not read split {split!r} ({type(e).__name__}: "
                        f"{str(e)[:300]})", path=where) from e
    if not samples:
        raise DataError(f"split {split!r} of task {task.name!r} holds no samples", path=where,
                        expected="at least one question")
    ids = [s.id for s in samples]
    if len(set(ids)) == len(ids):
        return samples, {f.name: file_digest(f) for f in files} if digests else {}
    seen: set[str] = set()
    for s in samples:  # which id is the first to repeat
        if s.id in seen:
            raise DataError(f"duplicate sample id {s.id!r} in split {split!r} of task {task.name!r}",
                            path=where, record=f"id {s.id}", expected="each question once")
        seen.add(s.id)
    return samples, {f.name: file_digest(f) for f in files} if digests else {}

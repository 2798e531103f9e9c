"""A finished run re-run unchanged is answered from its run folder (DESIGN §7: "a finished run re-run
makes zero model calls"; issue 16: it costs a small fraction of the first run).

The runner (`molmo_eval.run.runner.reuse_finished`) asks this module, before it loads any split or
the model's weights, whether the run folder already holds the result of exactly this evaluation.
It does when every input that decides the numbers is as it was:

- the record: status ``ok``, no failed sample, one process, this record schema and molmo-eval
  version, the same configuration (`RunConfig.to_json`, every key: tasks, model and its arguments,
  limit, seed, splits, variants, data folders, generation settings, bootstrap, cache folder,
  ``--no-cache``, ``--log-samples``...), and every file it lists unchanged (size and sha256);
- each task: the same task version and recorded task configuration, and the same sha256 of the
  annotation files the record lists (`Task.data_files`);
- the model: the same fingerprint (the reference model: the checkpoint's digest);
- nothing newer than the record under the tasks' data folders (images included) or in the
  source folders of the harness, the tasks and the model (`changed_since`): a file there modified
  after the run was written means the run is evaluated again, from the response cache.

Otherwise, or with ``--overwrite``, ``--no-cache`` or ``MOLMO_EVAL_NO_REUSE=1``, the run goes the
whole way (its outputs still from the response cache). A reused run gets a new record whose
metrics, breakdowns and configuration are the first run's; what changes is what this process did:
``run_id``, ``created``, ``timings``, ``counts`` (0 model calls, every sample a cache hit) and the
``cached`` flag of each line of ``samples.jsonl`` — the same files a re-run from the cache writes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import MolmoEvalError
from molmo_eval.core.types import SCHEMA_VERSION, RunRecord
from molmo_eval.core.version import __version__
from molmo_eval.run.records import RESULTS, SAMPLES, SAMPLES_GZ, content_entry, read_record

NO_REUSE_ENV = "MOLMO_EVAL_NO_REUSE"
_FALSE_LINE_END = b', "cached": false}\n'
_TRUE_LINE_END = b', "cached": true}\n'


def wanted(config: Mapping[str, Any]) -> bool:
    """Whether a finished run may be reused at all under this configuration and environment."""
    if os.environ.get(NO_REUSE_ENV, "").strip() not in ("", "0"):
        return False
    return bool(config.get("use_cache")) and not config.get("overwrite")


def finished_record(run_dir: Path, config: Mapping[str, Any]) -> tuple[RunRecord, int] | None:
    """The folder's record when it is a clean finished run of ``config`` whose files are intact, with
    the modification time (ns) of its ``results.json``; else None."""
    path = run_dir / RESULTS
    try:
        mtime = path.stat().st_mtime_ns
        old = read_record(run_dir)
    except (OSError, MolmoEvalError):
        return None
    if (old.status != "ok" or old.n_failed or old.errors or old.world_size != 1
            or old.schema_version != SCHEMA_VERSION or old.packages.get("molmo_eval") != __version__
            or dict(old.config) != dict(config)):
        return None
    if (run_dir / SAMPLES_GZ).exists() or bool(config.get("log_samples")) != (SAMPLES in old.files):
        return None
    for name, entry in old.files.items():
        try:
            if ((run_dir / name).stat().st_size != entry.get("bytes")
                    or content_entry(run_dir / name, count_lines="lines" in entry) != dict(entry)):
                return None
        except (OSError, MolmoEvalError):
            return None
    return old, mtime


def samples_rerun(data: bytes, n_lines: int) -> bytes | None:
    """``samples.jsonl`` as a re-run from the cache writes it: every line's ``cached`` flag true (it is
    each line's last key, `run.scoring.sample_line`); None when a line does not end that way."""
    data = data.replace(_FALSE_LINE_END, _TRUE_LINE_END)
    if data.count(b"\n") != n_lines or data.count(_TRUE_LINE_END) != n_lines:
        return None
    return data


def source_roots(objects: Iterable[object]) -> list[Path]:
    """The folders of the code that computes a run: molmo-eval's package (with its tasks and the
    reference model, where they are installed under it or mapped beside it) and the modules that
    define ``objects`` (task and model classes, which may come from other distributions)."""
    import importlib.util

    roots = [Path(__file__).resolve().parent.parent]  # the molmo_eval package
    for sub in ("molmo_eval.tasks", "molmo_eval.reference_model"):
        try:
            spec = importlib.util.find_spec(sub)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(p) for p in spec.submodule_search_locations)
    for obj in objects:  # a module in a package: the whole top-level package; a lone module: its file
        top = type(obj).__module__.split(".")[0]
        mod = sys.modules.get(top)
        paths = getattr(mod, "__path__", None)
        if paths is not None:
            roots.extend(Path(p) for p in paths)
        elif getattr(mod, "__file__", None):
            roots.append(Path(mod.__file__))  # type: ignore[arg-type, union-attr]
    return roots


def changed_since(roots: Iterable[Path], mtime_ns: int, *, suffixes: tuple[str, ...] = ()) -> bool:
    """Whether any file under ``roots`` (folders, searched through, or files; those ending in one of
    ``suffixes``, when given) was modified after ``mtime_ns``; a root that cannot be read counts as
    changed."""
    seen: set[str] = set()
    stack = [str(r) for r in roots]
    while stack:
        top = stack.pop()
        if top in seen:
            continue
        seen.add(top)
        try:
            if not os.path.isdir(top):
                if os.stat(top).st_mtime_ns > mtime_ns:
                    return True
                continue
            with os.scandir(top) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=True):
                        if e.name != "__pycache__":
                            stack.append(e.path)
                    elif (not suffixes or e.name.endswith(suffixes)) and e.stat().st_mtime_ns > mtime_ns:
                        return True
        except OSError:
            return True
    return False

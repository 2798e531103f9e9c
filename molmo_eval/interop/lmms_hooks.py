"""The hooks that tasks exported by `molmo_eval.interop.lmms_tasks` call inside lmms-eval (their ``utils.py``
forwards ``doc_to_visual``, ``process_results`` and ``aggregate`` here, with the export folder).

Where it sits: lmms-eval runs the model and then calls, per document, ``process_results`` -> here
the task's own parser and scorer (`molmo_eval.run.guard.score_sample`, as in a molmo-eval run); and per
metric, ``aggregate`` over all documents -> here `Task.finalize` and the task's metrics
(`molmo_eval.run.scoring.summarize_task`, without bootstrap). So an lmms-eval run of an exported task
reports the numbers a molmo-eval run reports on the same samples and outputs.

Two details keep that exact:

- lmms-eval strips every output before ``process_results`` and has no per-sample failure channel. The
  `molmo_reference` bridge records each raw output (`remember_output`), so whitespace the official
  scorers see (GQA compares raw strings) is restored when the stripped text matches; a failed
  generation comes back as ``ERROR_PREFIX + message`` and scores as a failed sample.
- ``aggregate`` receives only the per-document items (possibly gathered from several ranks); it
  rebuilds the samples from the export's data file by uid, in export order.

Nothing here imports lmms-eval: the hooks are plain functions over dicts.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from molmo_eval.core import registry
from molmo_eval.core.errors import DataError
from molmo_eval.core.task import Task
from molmo_eval.core.types import CoordSpace, Generation, Sample, SampleScore, TaskResult
from molmo_eval.run.guard import score_sample
from molmo_eval.run.scoring import summarize_task

MANIFEST = "molmo_export.json"
ERROR_PREFIX = "[molmo-eval: generation failed] "

_RAW: dict[str, str] = {}  # sample uid -> raw model output, filled by the bridge in this process
_RAW_LOCK = threading.Lock()


# --- raw outputs (written by the bridge, read by process_results) ------------------------------

def remember_output(uid: str, text: str) -> None:
    with _RAW_LOCK:
        _RAW[uid] = text


def forget_outputs() -> None:
    with _RAW_LOCK:
        _RAW.clear()


def restore_output(uid: str, seen: str) -> str:
    """The raw output of ``uid`` when lmms-eval's stripping is the only change; else what lmms-eval passed."""
    raw = _RAW.get(uid)
    return raw if raw is not None and raw.strip() == seen else seen


# --- samples and tasks ---------------------------------------------------------------------------

def sample_to_json(sample: Sample) -> str:
    """Everything scoring needs of a sample (its image travels in the document's ``image`` column)."""
    return json.dumps({"id": sample.id, "task": sample.task, "split": sample.split,
                       "prompt_fields": sample.prompt_fields, "target": sample.target, "meta": sample.meta,
                       "image_size": sample.image_size}, ensure_ascii=False, default=_plain)


def _plain(v: Any) -> Any:
    if hasattr(v, "tolist"):  # numpy scalars and arrays
        return v.tolist()
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    if isinstance(v, bytes):
        return v.decode("ascii")
    raise TypeError(f"cannot export a {type(v).__name__} in a sample")


@lru_cache(maxsize=1 << 16)
def sample_from_json(text: str) -> Sample:
    d = json.loads(text)
    size = d.get("image_size")
    return Sample(id=str(d["id"]), task=d["task"], split=d["split"], image=None,
                  prompt_fields=d.get("prompt_fields") or {}, target=d.get("target") or {},
                  meta=d.get("meta") or {}, image_size=None if size is None else (int(size[0]), int(size[1])))


@lru_cache(maxsize=64)
def get_task(name: str, variant: str) -> Task:
    return registry.get_task(name, variant)


def read_manifest(export_dir: Path) -> dict[str, Any]:
    path = export_dir / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("not found: the folder is not a `molmo-eval export lmms-tasks` output",
                        path=path) from None


def load_docs(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@lru_cache(maxsize=32)
def _samples(path: str, mtime_ns: int) -> dict[str, tuple[int, Sample]]:
    return {d["uid"]: (int(d["index"]), sample_from_json(d["sample"])) for d in load_docs(Path(path))}


def exported_samples(export_dir: Path, task: str) -> dict[str, tuple[int, Sample]]:
    """uid -> (export index, Sample) for one exported task."""
    entry = read_manifest(export_dir)["tasks"].get(task)
    if entry is None:
        raise DataError(f"task {task!r} is not in this export", path=export_dir / MANIFEST)
    path = export_dir / entry["data_file"]
    return _samples(str(path), path.stat().st_mtime_ns)


# --- the hooks ------------------------------------------------------------------------------------

def doc_to_visual(doc: Mapping[str, Any], export_dir: Path) -> list[Any]:
    """The document's image as a lazily opened PIL image (its ``filename`` lets the bridge read the very
    bytes a molmo-eval run reads); the path itself when the file cannot be opened, so the bridge
    records the failure for this sample as a run would."""
    from PIL import Image

    if not doc.get("image"):
        return []
    path = export_dir / doc["image"]  # absolute paths stay absolute
    try:
        return [Image.open(path)]
    except Exception:  # missing or unreadable: a per-sample failure, not a crash of the whole run
        return [str(path)]


def process_results(doc: Mapping[str, Any], results: Sequence[Any],
                    export_dir: Path) -> dict[str, dict[str, Any]]:
    """Parse and score one document with the task's own parser and scorer; one item per metric."""
    task = get_task(doc["task"], doc["variant"])
    sample = sample_from_json(doc["sample"])
    seen = results[0] if results else ""
    text = restore_output(doc["uid"], seen if isinstance(seen, str) else str(seen))
    gen = None if text.startswith(ERROR_PREFIX) else Generation(text=text)
    size = doc.get("image_size")
    scored = score_sample(task, sample, gen, CoordSpace(doc["coord_space"]),  # the runner's per-sample guard
                          None if not size else (int(size[0]), int(size[1])))
    answer, score = scored.answer, scored.score
    item = {"task": task.name, "variant": task.variant, "uid": doc["uid"], "index": int(doc["index"]),
            "values": {k: (None if math.isnan(v) else v) for k, v in score.values.items()},
            "fields": dict(score.fields), "failed": gen is None or scored.error is not None,
            "unparseable": answer is not None and not answer.parse_ok}
    return {m.name: {**item, "metric": m.name} for m in task.metrics()}


def aggregate(items: Sequence[Mapping[str, Any]], export_dir: Path) -> float:
    """One metric over every scored document, as molmo-eval aggregates it (NaN when it applies to none)."""
    if not items:
        return float("nan")
    result = summarize(items, export_dir)
    mv = result.metrics.get(items[0]["metric"])
    return float("nan") if mv is None else float(mv.value)


_SUMMARIES: dict[str, TaskResult] = {}  # items digest -> result: lmms-eval aggregates metric by metric


def summarize(items: Sequence[Mapping[str, Any]], export_dir: Path) -> TaskResult:
    """`summarize_task` over the documents behind ``items`` (in export order; duplicates dropped)."""
    first = items[0]
    by_uid = {it["uid"]: it for it in sorted(items, key=lambda it: int(it["index"]))}
    key = _digest(export_dir, first["task"], first["variant"], by_uid)
    if key in _SUMMARIES:
        return _SUMMARIES[key]
    task = get_task(first["task"], first["variant"])
    known = exported_samples(export_dir, task.name)
    missing = [u for u in by_uid if u not in known]
    if missing:
        raise DataError(f"{len(missing)} scored documents are not in the export (first: {missing[0]})",
                        path=export_dir / MANIFEST)
    samples = [known[u][1] for u in by_uid]
    scores = [SampleScore(u, {k: (float("nan") if v is None else float(v)) for k, v in it["values"].items()},
                          dict(it["fields"])) for u, it in by_uid.items()]
    result, _ = summarize_task(task, samples, scores, seed=0, n_boot=0,
                               n_failed=sum(bool(it["failed"]) for it in by_uid.values()),
                               n_unparseable=sum(bool(it["unparseable"]) for it in by_uid.values()))
    if len(_SUMMARIES) > 64:
        _SUMMARIES.clear()
    _SUMMARIES[key] = result
    return result


def _digest(export_dir: Path, task: str, variant: str, by_uid: Mapping[str, Mapping[str, Any]]) -> str:
    h = hashlib.blake2b(f"{export_dir}\x1f{task}\x1f{variant}".encode(), digest_size=16)
    for uid, it in by_uid.items():
        h.update(json.dumps([uid, it["values"], it["fields"], it["failed"]], sort_keys=True).encode())
    return h.hexdigest()

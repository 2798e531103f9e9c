"""`molmo-eval export lmms-tasks`: molmo-eval tasks written as lmms-eval task definitions over local data,
scored by molmo-eval's own parsers, scorers and metrics (DESIGN §8; lmms-eval is what most users run).

Where it sits: beside the runner. Samples are loaded exactly as a run loads them (`runner.prepare_tasks`:
same data roots, splits, variants and ``--limit``), prompts are rendered as a run renders them for one
prompt style and coordinate space, and the folder ``DIR`` receives::

    molmo_export.json            what was exported: tasks, splits, variants, style, space, data digests
    utils.py                     lmms-eval's !function hooks, forwarding to `molmo_eval.interop.lmms_hooks`
    molmo_<task>.yaml            one lmms-eval task per molmo-eval task, tagged ``molmo_all``
    molmo_<task>.jsonl           its documents (``dataset_path: json``, ``data_files`` beside the YAML)
    images/<task>/<digest>.<ext> images that were inline in the benchmark file (MMBench base64), verbatim

One lmms-eval task holds all splits of a molmo-eval task in run order, so its metrics are the run's
overall metrics (POPE's mean over splits included). Documents reference benchmark images by absolute
path (nothing is copied; the data root must stay where it is). Task names carry a ``molmo_`` prefix:
lmms-eval resolves a name to its built-in task first, so ``vqav2`` would silently be lmms-eval's own.
The tag is not ``molmo_eval``: lmms-eval reads a ``--tasks`` value that names a folder in the working
directory as a folder of YAMLs, and a molmo-eval checkout has a ``molmo_eval`` folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molmo_eval.core.config import RunConfig
from molmo_eval.core.errors import ConfigError, MolmoEvalError
from molmo_eval.core.task import Task
from molmo_eval.core.types import CoordSpace, GenerationSettings, ImageRef, Sample
from molmo_eval.core.version import __version__
from molmo_eval.data.images import image_size
from molmo_eval.interop.lmms_hooks import MANIFEST, sample_to_json
from molmo_eval.run.records import atomic_write

PREFIX = "molmo_"
TAG = "molmo_all"
UTILS = "utils.py"
IMAGES = "images"


@dataclass(frozen=True)
class ExportedTask:
    task: str  # molmo-eval name
    lmms_task: str  # lmms-eval name
    variant: str
    splits: tuple[str, ...]
    n: int
    data_file: str  # relative to the export folder
    yaml_file: str


def lmms_task_name(task: str) -> str:
    """``refcoco+`` -> ``molmo_refcoco_plus``: lmms-eval names are also file names and YAML keys."""
    return PREFIX + task.replace("+", "_plus").replace("-", "_")


# --- export ----------------------------------------------------------------------------------------

def export_lmms_tasks(out: Path, cfg: RunConfig, *, prompt_style: str,
                      coord_space: CoordSpace) -> list[ExportedTask]:
    """Write the tasks of ``cfg`` (data root, splits, variants, limit) as lmms-eval tasks into ``out``."""
    from molmo_eval.run.runner import prepare_tasks

    prepared = prepare_tasks(cfg)  # every data error is reported before anything is written
    _prepare_folder(out)
    exported: list[ExportedTask] = []
    images: dict[str, str] = {}  # inline image (base64 text or digest) -> written file
    for p in prepared:
        docs = [_doc(p.task, s, i, prompt_style, coord_space, out, images) for i, s in enumerate(p.samples)]
        name = lmms_task_name(p.task.name)
        splits = tuple(dict.fromkeys(s.split for s in p.samples))
        entry = ExportedTask(p.task.name, name, p.task.variant, splits, len(docs), f"{name}.jsonl",
                             f"{name}.yaml")
        atomic_write(out / entry.data_file, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
        atomic_write(out / entry.yaml_file, task_yaml(p.task, entry, prompt_style, coord_space))
        exported.append(entry)
    atomic_write(out / UTILS, utils_source())
    atomic_write(out / MANIFEST, json.dumps(_manifest(cfg, prepared, exported, prompt_style, coord_space),
                                            indent=1, ensure_ascii=False) + "\n")
    return exported


def _prepare_folder(out: Path) -> None:
    """A new or empty folder, or an earlier export (whose files are removed, so no stale task lingers)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        old = out / MANIFEST
        if not old.is_file():
            raise ConfigError(f"--out {out}: the folder is not empty and holds no earlier export "
                              f"({MANIFEST}); choose a new or empty folder")
        try:
            tasks = json.loads(old.read_text(encoding="utf-8")).get("tasks", {})
        except ValueError:
            tasks = {}
        for entry in tasks.values():
            for key in ("data_file", "yaml_file"):
                (out / entry.get(key, "\0")).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _doc(task: Task, sample: Sample, index: int, style: str, space: CoordSpace, out: Path,
         images: dict[str, str]) -> dict[str, Any]:
    """One lmms-eval document: the prompt a run would send, the image a run would load, and the sample."""
    path, size = _image(sample, out, images)
    return {
        "uid": sample.uid, "task": task.name, "variant": task.variant, "split": sample.split, "id": sample.id,
        "index": index, "prompt": task.prompt(sample, style, space=space), "image": path, "image_size": size,
        "target": target_text(sample), "answer_kind": task.answer_kind.value, "coord_space": space.value,
        "prompt_style": style, "sample": sample_to_json(sample),
    }


def _image(sample: Sample, out: Path, images: dict[str, str]) -> tuple[str, list[int] | None]:
    """(path, actual size): the size a run parses with comes from the image itself; None when the image
    cannot be read, which the run (and the bridge) then records as this sample's failure."""
    ref = sample.image
    if ref is None:
        return "", None
    if ref.path is not None:
        path = ref.path
    else:
        try:
            path = _write_inline(ref, sample.task, out, images)
        except MolmoEvalError:
            return "", None
    try:
        w, h = image_size(ImageRef(path=str(out / path)))
    except MolmoEvalError:
        return path, None
    return path, [w, h]


def _write_inline(ref: ImageRef, task: str, out: Path, images: dict[str, str]) -> str:
    """Inline image bytes written once per distinct image, byte for byte, under images/<task>/."""
    from molmo_eval.data.images import image_bytes

    key = ref.b64 if ref.b64 is not None else hashlib.sha256(ref.data or b"").hexdigest()
    if key in images:
        return images[key]
    data = image_bytes(ref)
    rel = f"{IMAGES}/{lmms_task_name(task)}/{hashlib.sha256(data).hexdigest()[:32]}.{_extension(data)}"
    target = out / rel
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    images[key] = rel
    return rel


def _extension(data: bytes) -> str:
    for magic, ext in ((b"\xff\xd8", "jpg"), (b"\x89PNG", "png"), (b"GIF8", "gif"), (b"BM", "bmp")):
        if data.startswith(magic):
            return ext
    return "webp" if data[8:12] == b"WEBP" else "img"


def target_text(sample: Sample) -> str:
    """A short readable target for lmms-eval's ``doc_to_target`` (logs only; scoring reads the sample)."""
    t = sample.target
    for key in ("answer", "label"):
        if isinstance(t.get(key), str):
            return t[key]
    if t.get("answers"):
        return str(list(t["answers"])[0])
    if "count" in t:
        return f"{t['count']} target(s)"
    if t.get("box") is not None:
        return json.dumps([round(float(v), 2) for v in t["box"]])
    return ""


def _manifest(cfg: RunConfig, prepared: Sequence[Any], exported: Sequence[ExportedTask], style: str,
              space: CoordSpace) -> dict[str, Any]:
    return {
        "format": 1, "molmo_eval": __version__, "prompt_style": style, "coord_space": space.value,
        "limit": cfg.limit, "tag": TAG,
        "tasks": {e.task: {"lmms_task": e.lmms_task, "variant": e.variant, "splits": list(e.splits), "n": e.n,
                           "data_file": e.data_file, "yaml_file": e.yaml_file, "data_dir": str(p.data_dir),
                           "data_digests": dict(p.digests)} for e, p in zip(exported, prepared)},
    }


# --- the files lmms-eval reads ----------------------------------------------------------------------

def task_yaml(task: Task, entry: ExportedTask, style: str, space: CoordSpace) -> str:
    """The task's lmms-eval YAML (written by hand: strings are JSON-quoted, which YAML reads as is)."""
    q = json.dumps
    lines = [
        f"# molmo-eval {__version__} export of task {q(task.name)} (variant {q(task.variant)}; splits "
        f"{', '.join(entry.splits) or '-'}; {entry.n} documents).",
        f"# Prompts are rendered in the {q(style)} style for a model writing points in {q(space.value)}.",
        "# Scoring calls molmo-eval's own parser, scorer and metrics "
        "(utils.py -> molmo_eval.interop.lmms_hooks).",
        f"task: {q(entry.lmms_task)}",
        f"tag: {q(TAG)}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {q(entry.data_file)}",
        "test_split: test",
        "output_type: generate_until",
        "doc_to_visual: !function utils.doc_to_visual",
        "doc_to_text: prompt",
        "doc_to_target: target",
        *generation_yaml(task.generation_settings()),
        "process_results: !function utils.process_results",
        "metric_list:",
    ]
    for m in task.metrics():  # null: no better direction, so lmms-eval's table shows no arrow
        lines += [f"  - metric: {q(m.name)}", "    aggregation: !function utils.aggregate",
                  f"    higher_is_better: {_YAML_BOOL[m.higher_is_better]}"]
    lines += ["metadata:", f"  version: {q(task.version)}", f"  molmo_task: {q(task.name)}",
              f"  molmo_variant: {q(task.variant)}"]
    return "\n".join(lines) + "\n"


_YAML_BOOL = {True: "true", False: "false", None: "null"}


def generation_yaml(settings: GenerationSettings) -> list[str]:
    """``until`` is always written: lmms-eval would otherwise stop at a blank line, which a run does not."""
    until = "[" + ", ".join(json.dumps(s) for s in settings.stop) + "]"
    return ["generation_kwargs:", f"  max_new_tokens: {settings.max_new_tokens}",
            f"  temperature: {float(settings.temperature)}",
            f"  do_sample: {'true' if settings.temperature > 0 else 'false'}", f"  until: {until}"]


def utils_source() -> str:
    return f'''"""lmms-eval hooks of the tasks exported here by molmo-eval {__version__}
(`molmo-eval export lmms-tasks`).

Scoring is molmo-eval's own (molmo_eval.interop.lmms_hooks): numbers equal a molmo-eval run on these
samples.
"""

from pathlib import Path

from molmo_eval.interop import lmms_hooks

HERE = Path(__file__).resolve().parent


def doc_to_visual(doc):
    return lmms_hooks.doc_to_visual(doc, HERE)


def process_results(doc, results, **kwargs):
    return lmms_hooks.process_results(doc, results, HERE)


def aggregate(items):
    return lmms_hooks.aggregate(items, HERE)
'''


# --- what the export is for --------------------------------------------------------------------------

def model_defaults(model: str) -> tuple[str, CoordSpace]:
    """The prompt style and coordinate space a registered model declares on its class (without loading
    it); "default" and pixels when it declares them only per instance (e.g. `scripted`)."""
    from molmo_eval.core import registry

    factory = registry.model_factory(model)
    style = getattr(factory, "prompt_style", None)
    space = getattr(factory, "coord_space", None)
    return (style if isinstance(style, str) else "default",
            space if isinstance(space, CoordSpace) else CoordSpace.PIXELS)


def parse_space(text: str) -> CoordSpace:
    try:
        return CoordSpace(text)
    except ValueError:
        names = ", ".join(c.value for c in CoordSpace)
        raise ConfigError(f"--coord-space {text!r}: expected one of {names}") from None


def summary_lines(exported: Sequence[ExportedTask]) -> list[str]:
    return [f"{e.lmms_task:24s} {e.n:6d} documents  ({e.task}, {e.variant}; {', '.join(e.splits)})"
            for e in exported]


"""Benchmark-format training examples for the reference model, which only the harness can make.

Mirroring Molmo's stage 2, which fine-tunes on the *train* splits of the academic benchmarks, this
writes every benchmark's files from the world's **training** seed space into a folder, reads them
back through each task plugin's own `load` and renders the exact prompts the plugin asks at
evaluation (`prompt(sample, "molmo")`), with answers taken from the targets. Evaluation images come
from the disjoint evaluation seed space, so none is trained on. Used by `molmo-eval train` and by
the training jobs of an ablation grid. With ``pointing=False`` (the grid's "no pointing" arm) the
referring expressions (RefCOCO, RefCOCO+, RefCOCOg) are kept, answered with plain-text coordinates
(`text_coordinates`), and PointQA, whose answers need several points, is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_TASKS = ("vqav2", "textvqa", "gqa", "pope", "mmbench", "refcoco", "refcoco+", "refcocog", "pointqa")
POINT_TASKS = ("refcoco", "refcoco+", "refcocog", "pointqa")
# harness-side sizes of the benchmark-format examples, beside the world's own (mini, small, full):
# "tiny" keeps the tiny grid preset's data building to seconds
TINY_SIZE = {"vqav2": 12, "textvqa": 8, "gqa": 8, "refer": 6, "pope": 6, "mmbench": 8, "pointqa": 24}
Log = Callable[[str], None]
NONE_ANSWER = "There are none."


def benchmark_groups(size: str, seed: int, pointing: bool, root: Path | None = None,
                     log: Log | None = None) -> dict[str, list[Any]]:
    """``{"bench_ask": [...], "bench_point": [...]}``: one `Group` per image with every prompt the task
    plugins ask about it, written from the training seed space (``root``: keep the files there).
    ``size``: a world size (mini, small, full) or ``tiny`` (`TINY_SIZE`); ``log`` gets a line per
    phase (the world's benchmarks written, each task read)."""
    import tempfile

    if root is not None:
        return _groups_from(root, size, seed, pointing, log or (lambda _m: None))
    with tempfile.TemporaryDirectory(prefix="molmo-train-bench-") as tmp:
        return _groups_from(Path(tmp), size, seed, pointing, log or (lambda _m: None))


def _groups_from(root: Path, size: str, seed: int, pointing: bool, log: Log) -> dict[str, list[Any]]:
    from molmo_eval.core import registry
    from molmo_eval.reference_model.world.world import WorldSize, write_world

    def written(name: str, done: int, total: int) -> None:
        if done == total:
            log(f"  wrote {name} ({total})")

    log(f"benchmark examples: writing the world's benchmarks ({size}, seed {seed}, training scenes)")
    with training_seed_space():
        write_world(root, WorldSize(**TINY_SIZE) if size == "tiny" else size, seed, progress=written)
    by_image: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    refs: dict[tuple[str, str], Any] = {}
    for name in BENCH_TASKS:
        task = registry.get_task(name)
        log(f"  reading {name} prompts")
        for split in task.splits:
            if not all(f.is_file() for f in task.data_files(root / task.data_dir, split)):
                continue  # a split the world does not write (e.g. VQAv2 train2014)
            for s in task.load(root / task.data_dir, split):
                answer = target_answer(task, s)
                refer = name.startswith("refcoco")
                if answer is not None and refer and not pointing:
                    answer = text_coordinates(answer)
                if answer is None or (not pointing and "<point" in answer):
                    continue
                for prompt in _prompts(task, s, pointing):
                    point = refer or "<point" in answer or "<point" in prompt
                    key = ("point" if point else "ask", _image_key(s.image))
                    by_image.setdefault(key, []).append((prompt, answer, f"bench/{name}"))
                    refs[key] = s.image
    return _to_groups(by_image, refs)


def _prompts(task: Any, s: Any, pointing: bool) -> list[str]:
    """The Molmo-style prompt; Point-and-Ask prompts also with the point written as bin tokens (the
    model's own space), in case the runner passes the model's coordinate space."""
    from molmo_eval.core.types import CoordSpace

    out = [task.prompt(s, "molmo")]
    if task.name == "pointqa" and s.split != "pointing" and pointing:
        out.append(task.prompt(s, "molmo", space=CoordSpace.BINS))
    elif task.name == "pointqa" and s.split != "pointing":
        out = []  # the question carries a point: nothing to ask without pointing
    return out


def target_answer(task: Any, s: Any) -> str | None:
    """What the model should write for a sample, from its targets (None: no trainable answer)."""
    t = s.target
    if task.name in ("vqav2", "textvqa"):
        return _mode(t["answers"])
    if task.name == "gqa":
        return str(t["answer"])
    if task.name == "pope":
        return str(t["label"])
    if task.name == "mmbench":
        return str(t["answer"])
    if task.name.startswith("refcoco"):
        return _point_answer([_inner_point(t.get("mask"), t["box"], s.image_size)], s.image_size)
    if task.name == "pointqa":
        if s.split != "pointing":
            return str(t["answer"])
        pts = [tuple(p) for p in t["points"]]
        if s.meta.get("kind") == "count":
            n = len(pts)
            tail = NONE_ANSWER if n == 0 else f"There {'is' if n == 1 else 'are'} {n}."
            return (_point_answer(pts, s.image_size) + " " + tail).strip() if pts else tail
        return _point_answer(pts, s.image_size) if pts else NONE_ANSWER
    return None


def text_coordinates(answer: str) -> str:
    """``<point> <x_45> <y_67>`` -> ``(45, 67)``: a referring answer in plain text for the "no point
    tokens" ablation (the same bins, read back by `molmo_eval.parsing.points` as an ``(x, y)`` pair
    in the model's declared space)."""
    import re

    return re.sub(r"<point>\s*<x_(\d+)>\s*<y_(\d+)>", r"(\1, \2)", answer)


def _point_answer(points: list[tuple[float, float]], size: tuple[int, int] | None) -> str:
    from molmo_eval.core.types import CoordSpace
    from molmo_eval.parsing.points import format_point

    return " ".join(format_point(p, CoordSpace.BINS, size) for p in sorted(points))


def _inner_point(mask: Any, box: tuple[float, float, float, float], size: tuple[int, int] | None
                 ) -> tuple[float, float]:
    """The mask pixel farthest from the mask's border (its centre when there is no mask)."""
    if mask is None or size is None:
        return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    import numpy as np
    from pycocotools import mask as mask_utils
    from scipy.ndimage import distance_transform_edt

    m = mask_utils.decode(mask)
    if m.ndim == 3:
        m = m.max(axis=2)
    if not m.any():
        return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    d = distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(d)), d.shape)
    return (c + 0.5, r + 0.5)


def _mode(answers: Any) -> str:
    from collections import Counter

    counts = Counter(answers)
    return max(counts, key=lambda a: (counts[a], -list(answers).index(a)))


def _image_key(ref: Any) -> str:
    import hashlib

    if ref.path is not None:
        return ref.path
    data = ref.data if ref.data is not None else ref.b64.encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _to_groups(by_image: dict[tuple[str, str], list[tuple[str, str, str]]], refs: dict[tuple[str, str], Any]
               ) -> dict[str, list[Any]]:
    from molmo_eval.data.images import load_image
    from molmo_eval.reference_model.data import Group

    out: dict[str, list[Any]] = {"bench_ask": [], "bench_point": []}
    for key, items in by_image.items():
        pixels = load_image(refs[key], decode=True).pixels
        for i in range(0, len(items), 4):  # at most 4 questions packed per row
            chunk = items[i:i + 4]
            out[f"bench_{key[0]}"].append(Group(pixels, tuple((p, a) for p, a, _ in chunk),
                                                tuple(k for _, _, k in chunk)))
    return {k: v for k, v in out.items() if v}


class training_seed_space:
    """Within this context the world's benchmark writers draw scenes from the *training* seed space.

    The writers call ``eval_scene_id`` from their own module namespace; it is swapped for a function
    returning training ids (below ``EVAL_BASE``, hence disjoint from every evaluation image) and
    restored on exit. (Asked of the world: a ``space="train"`` argument to ``write_world``.)"""

    MODULES = ("vqa", "gqa", "refer", "pope", "mmbench", "pointqa")

    def __enter__(self) -> training_seed_space:
        import importlib

        from molmo_eval.reference_model.world import rng

        def train_ids(seed: int, *parts: object) -> int:
            return rng.train_scene_id(seed, "benchmark-train", *parts)

        self.saved = []
        for name in self.MODULES:
            mod = importlib.import_module(f"molmo_eval.reference_model.world.{name}")
            if hasattr(mod, "eval_scene_id"):
                self.saved.append((mod, mod.eval_scene_id))
                mod.eval_scene_id = train_ids
        return self

    def __exit__(self, *exc: object) -> None:
        for mod, fn in self.saved:
            mod.eval_scene_id = fn

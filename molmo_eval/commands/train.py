"""`molmo-eval train`: train the reference model in three stages.

    molmo-eval train --preset default --stages 1,2,3 --data-fraction 1 --pointing on --out runs/ref

The trainer itself is `molmo_eval.reference_model.train` (standalone, world data only). This command
adds what only the harness knows, mirroring Molmo's stage 2, which fine-tunes on the *train* splits
of the academic benchmarks: it writes every benchmark's files from the world's **training** seed
space into a temporary folder, reads them back through each task plugin's own `load` and renders
the exact prompts the plugin asks at evaluation (`prompt(sample, "molmo")`), with answers taken from
the targets. Evaluation images come from the disjoint evaluation seed space, so none is trained on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError, MissingDependency

BENCH_TASKS = ("vqav2", "textvqa", "gqa", "pope", "mmbench", "refcoco", "refcoco+", "refcocog", "pointqa")
POINT_TASKS = ("refcoco", "refcoco+", "refcocog", "pointqa")
NONE_ANSWER = "There are none."


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the reference model (three stages) on the synthetic world",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", help="model size: tiny, small or default (the bundled one)")
    p.add_argument("--stages", default="1,2,3", metavar="1,2,3",
                   help="stages to run: 1 caption (preceded by the encoder pre-training, stage 0), 2 instruct, "
                        "3 pointing")
    p.add_argument("--no-vision-pretrain", action="store_true",
                   help="skip stage 0: stage 1 then aligns to a frozen, randomly initialised encoder")
    p.add_argument("--data-fraction", type=float, default=1.0, metavar="F",
                   help="fraction of each stage's steps (the data-size ablation; default 1)")
    p.add_argument("--pointing", choices=("on", "off"), default="on",
                   help="off: no point tokens and no point data (grounding answered in words or not at all)")
    p.add_argument("--pointing-head", action="store_true", help="add the regression PointingModule")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (a checkpoint per stage)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model init and the data (default 0)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--init", type=Path, metavar="DIR", help="start from this checkpoint (e.g. to run --stages 2,3)")
    p.add_argument("--bench-data", choices=("on", "off"), default="on",
                   help="add benchmark-format examples from the training seed space to stages 2 and 3")
    p.add_argument("--bench-size", default="mini", metavar="SIZE",
                   help="world size of those examples: mini, small or full (default mini)")
    p.add_argument("--heldout", type=int, default=100, metavar="N",
                   help="unseen world scenes per source scored after each stage (0: none)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads (default 2; 1 is faster when other processes keep the cores busy)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from molmo_eval.models.reference import passive_openmp

    passive_openmp()
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError:
        raise MissingDependency("torch", "model", "training the reference model") from None
    from molmo_eval.reference_model import train as rt
    from molmo_eval.reference_model.config import PRESETS, preset

    stages = _stages(args.stages)
    if args.preset not in PRESETS:
        raise ConfigError(f"--preset {args.preset!r}: expected one of {', '.join(PRESETS)}")
    if not 0 < args.data_fraction <= 10:
        raise ConfigError(f"--data-fraction {args.data_fraction}: expected a number in (0, 10]")
    pointing = args.pointing == "on"
    bench = args.bench_data == "on" and any(s in stages for s in (2, 3))
    cfg = rt.TrainConfig(
        model=preset(args.preset, pointing_head=args.pointing_head),
        stages=rt.stage_plan(args.preset, pointing=pointing, fraction=args.data_fraction, stages=stages,
                             bench=bench, vision_pretrain=not args.no_vision_pretrain),
        seed=args.seed, pointing=pointing, threads=args.threads, heldout=args.heldout,
        meta={"preset": args.preset, "command": "molmo-eval train " + " ".join(sys.argv[2:]),
              "bench_data": bench, "bench_size": args.bench_size if bench else None},
    )
    extra = benchmark_groups(args.bench_size, args.seed, pointing) if bench else {}
    last = rt.train(cfg, args.out, extra=extra, resume=args.resume, init=args.init)
    print(f"trained: {last}")
    return 0


def _stages(text: str) -> tuple[int, ...]:
    try:
        stages = tuple(int(s) for s in text.split(","))
    except ValueError:
        stages = ()
    if not stages or any(s not in (0, 1, 2, 3) for s in stages) or list(stages) != sorted(set(stages)):
        raise ConfigError(f"--stages {text!r}: expected increasing stage numbers from 0,1,2,3")
    return stages


# --- benchmark-format training examples -------------------------------------------------------------

def benchmark_groups(size: str, seed: int, pointing: bool, root: Path | None = None) -> dict[str, list[Any]]:
    """``{"bench_ask": [...], "bench_point": [...]}``: one `Group` per image with every prompt the task
    plugins ask about it, written from the training seed space (``root``: keep the files there)."""
    import tempfile

    if root is not None:
        return _groups_from(root, size, seed, pointing)
    with tempfile.TemporaryDirectory(prefix="molmo-train-bench-") as tmp:
        return _groups_from(Path(tmp), size, seed, pointing)


def _groups_from(root: Path, size: str, seed: int, pointing: bool) -> dict[str, list[Any]]:
    from molmo_eval.core import registry
    from molmo_eval.reference_model.world.world import write_world

    with training_seed_space():
        write_world(root, size, seed)
    by_image: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    refs: dict[tuple[str, str], Any] = {}
    for name in BENCH_TASKS:
        if name in POINT_TASKS and not pointing and name != "pointqa":
            continue
        task = registry.get_task(name)
        for split in task.splits:
            if not all(f.is_file() for f in task.data_files(root / task.data_dir, split)):
                continue  # a split the world does not write (e.g. VQAv2 train2014)
            for s in task.load(root / task.data_dir, split):
                answer = target_answer(task, s)
                if answer is None or (not pointing and "<point" in answer):
                    continue
                for prompt in _prompts(task, s, pointing):
                    key = ("point" if "<point" in answer or "<point" in prompt else "ask", _image_key(s.image))
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

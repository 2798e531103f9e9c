"""The jobs of an ablation grid, the code that runs in the workers of `molmo_eval.grid.executors`.

    build_bench    benchmark-format training examples (`molmo-eval train`'s), built once per pointing
                   setting and stored in the cache with a content digest per source
    train_stage    one stage of a chain, from the checkpoint of the stage before it
    evaluate_cell  a checkpoint on the grid's tasks, into a normal run directory, with the
                   generation throughput measured in that run (`throughput`)

Each takes a job value planned by `molmo_eval.grid.plan` and the cache folder, returns a small dict of
timings, and skips itself when its output already exists (that is the cell cache). Module-level
functions of picklable values, so a process pool or a Ray cluster can run them; torch and the
reference model are imported inside.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from molmo_eval.grid.plan import BenchJob, EvalJob, StageJob
from molmo_eval.run.records import RESULTS

BENCH_INDEX = "index.json"


def checkpoint_dir(cache: Path, key: str) -> Path:
    return cache / "stages" / key / "checkpoint"


def bench_dir(cache: Path, key: str) -> Path:
    return cache / "bench" / key


def _say(quiet: bool) -> Any:
    return (lambda _m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))


def build_bench(job: BenchJob, cache: str, quiet: bool = False) -> dict[str, Any]:
    """Benchmark-format training groups (`molmo-eval train`'s), written once to the cache."""
    from molmo_eval.training.bench_examples import benchmark_groups

    out = bench_dir(Path(cache), job.key)
    if (out / BENCH_INDEX).is_file():
        return {"cached": True, "seconds": 0.0}
    t0 = time.perf_counter()
    save_groups(benchmark_groups(job.size, job.seed, job.pointing, log=_say(quiet)), out, job.pointing)
    return {"cached": False, "seconds": time.perf_counter() - t0}


def save_groups(groups: Mapping[str, Sequence[Any]], out: Path, pointing: bool = True) -> None:
    """Groups as one flat uint8 array of their (shared) images plus a JSON index with, per source,
    the digest of the data the trainer will see (after dropping point pairs when ``pointing`` is
    off, as `reference_model.data.ListSource` does). Written to a temporary folder renamed into
    place, so a reader never sees half of it."""
    import numpy as np

    from molmo_eval.reference_model.data import without_points

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays: list[Any] = []
    where: dict[int, tuple[int, list[int], str]] = {}
    offset = 0
    index: dict[str, Any] = {"sources": {}, "digests": {}}
    for name, items in groups.items():
        rows = []
        h = hashlib.sha256()
        for g in items:
            img = g.image
            if id(img) not in where:
                flat = np.ascontiguousarray(img, dtype=np.uint8).ravel()
                where[id(img)] = (offset, list(img.shape), hashlib.sha256(flat.tobytes()).hexdigest())
                arrays.append(flat)
                offset += flat.size
            off, shape, img_digest = where[id(img)]
            rows.append(
                {"image": off, "shape": shape, "pairs": [list(p) for p in g.pairs], "kinds": list(g.kinds)}
            )
            seen = g if pointing else without_points(g)
            if seen is not None:
                h.update(json.dumps([shape, img_digest, seen.pairs, seen.kinds]).encode())
        index["sources"][name] = rows
        index["digests"][name] = h.hexdigest()[:16]
    np.save(tmp / "images.npy", np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint8))
    (tmp / BENCH_INDEX).write_text(json.dumps(index))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def load_groups(path: Path) -> dict[str, list[Any]]:
    import numpy as np

    from molmo_eval.reference_model.data import Group

    flat = np.load(path / "images.npy", mmap_mode="r")
    index = json.loads((path / BENCH_INDEX).read_text())
    images: dict[int, Any] = {}
    out: dict[str, list[Any]] = {}
    for name, rows in index["sources"].items():
        groups = []
        for r in rows:
            off, shape = r["image"], tuple(r["shape"])
            if off not in images:
                images[off] = np.array(flat[off : off + math.prod(shape)]).reshape(shape)
            groups.append(Group(images[off], tuple(tuple(p) for p in r["pairs"]), tuple(r["kinds"])))
        out[name] = groups
    return out


def vocab_texts(path: Path) -> list[str]:
    """The texts `reference_model.train.train` builds a tokenizer from, in its order."""
    index = json.loads((path / BENCH_INDEX).read_text())
    return [t for rows in index["sources"].values() for r in rows for pair in r["pairs"] for t in pair]


def bench_contents(cache: Path, keys: Sequence[str]) -> dict[str, dict[str, str]]:
    """Content digests of every built benchmark-examples job among ``keys``."""
    out = {}
    for key in keys:
        f = bench_dir(cache, key) / BENCH_INDEX
        if f.is_file():
            out[key] = json.loads(f.read_text())["digests"]
    return out


def train_stage(job: StageJob, cache: str, quiet: bool = False) -> dict[str, Any]:
    """Train one stage into ``CACHE/stages/<key>/checkpoint`` (resuming an interrupted attempt)."""
    from molmo_eval.grid.recipe import trains_point_tokens
    from molmo_eval.reference_model import checkpoint as ckpt
    from molmo_eval.reference_model import train as rt
    from molmo_eval.reference_model.config import preset

    root = Path(cache)
    final = checkpoint_dir(root, job.key)
    if ckpt.is_checkpoint(final):
        return {"cached": True, "seconds": 0.0}
    t0 = time.perf_counter()
    cfg = rt.TrainConfig(
        model=preset(job.preset),
        stages=(job.config,),
        seed=job.seed,
        pointing=trains_point_tokens(job.pointing),
        threads=job.threads,
        heldout=0,
        pool=job.pool,
        pools=dict(job.pools),
        meta={
            "preset": job.preset,
            "grid_stage": job.key,
            "parent": job.parent,
            "data_fraction": job.fraction,
        },
    )
    extra = load_groups(bench_dir(root, job.bench)) if job.bench else {}
    tok = None
    if job.parent is None:
        texts = vocab_texts(bench_dir(root, job.vocab)) if job.vocab else []
        tok = rt.build_tokenizer(texts)
    init = checkpoint_dir(root, job.parent) if job.parent else None
    work = final.parent / "work"
    # the trainer's progress bars go to stderr; --quiet silences them
    with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
        last = rt.train(cfg, work, extra=extra, tokenizer=tok, resume=True, init=init)
    last.rename(final)
    shutil.rmtree(work, ignore_errors=True)
    return {"cached": False, "seconds": time.perf_counter() - t0}


def evaluate_cell(job: EvalJob, cache: str, out: str, quiet: bool = True) -> dict[str, Any]:
    """Evaluate a checkpoint into ``OUT/runs/<key>`` (a normal run directory)."""
    run_dir = Path(out) / job.run_name
    if (run_dir / RESULTS).is_file():
        return {"cached": True, "seconds": 0.0}
    from molmo_eval.core.config import build
    from molmo_eval.models.reference import ReferenceModel
    from molmo_eval.run.runner import run
    from molmo_eval.run.throughput import Timed

    t0 = time.perf_counter()
    spec = job.spec
    args = {"checkpoint": str(checkpoint_dir(Path(cache), job.train)), "threads": str(spec.threads)}
    cfg = build(
        list(spec.tasks),
        model="reference",
        model_args=args,
        limit=spec.limit,
        batch_size=spec.batch_size,
        bootstrap=spec.bootstrap,
        seed=spec.eval_seed,
        output_path=run_dir,
        data_root=spec.data_root,
        cache_dir=Path(cache) / "responses",
    )
    run(cfg, model=Timed(ReferenceModel(**args)), show_progress=not quiet)  # tokens/s in the same run
    return {"cached": False, "seconds": time.perf_counter() - t0}

"""A grid spec -> its plan: one training job per *distinct* stage, one evaluation job per distinct
checkpoint, and which chain of stages and which evaluation each cell uses.

Stage-prefix sharing: a cell with stages ``1+2+3`` is the chain stage 1 -> stage 2 -> stage 3, each
stage trained from the previous stage's checkpoint (``--init``). A stage job is keyed by everything
that determines its weights: the stage's own configuration (`reference_model.train.stage_plan`), the
model preset, seed, data fraction, torch threads, the benchmark-format data, the trainer's source
code and the key of the stage before it. Cells that agree on a prefix therefore share its
checkpoints: stage 1 of ``1+2+3`` *is* stage 1 of ``1``. The cell's pointing and caption settings
reach the stages through `recipe.cell_stages`; pointing only changes data that mention points, so it
is part of a stage's key only when the stage's mixture has a source with point pairs (stage 1 trains
on captions alone, which have none, so it is shared by pointing off, on and only; stages 1 and 2 of
pointing "only" are those of "on").
All stages with no parent start from one tokenizer per grid (the benchmark texts with pointing on),
so a stage's vocabulary never depends on which cells asked for it. Evaluation keys also cover the
scoring code.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError
from molmo_eval.grid.record import GRID_FORMAT
from molmo_eval.grid.spec import Cell, GridSpec

RUNS = "runs"  # evaluation run directories inside the grid folder
WORLD_SOURCES = frozenset({"cap", "ask", "point"})  # the world's training streams (reference_model.data)
POINT_FREE_SOURCES = frozenset({"cap", "ask", "scenes", "cap_noisy", "refer_text"})
BENCH_SOURCES = frozenset({"bench_ask", "bench_point"})  # benchmark-format examples (`molmo-eval train`)


@dataclass(frozen=True)
class BenchJob:
    """Write the benchmark-format training examples (one pointing setting) to the cache."""

    key: str
    size: str
    seed: int
    pointing: bool  # False: the "no pointing" examples (referring answers in plain text)


@dataclass(frozen=True)
class StageJob:
    """Train one stage, starting from the checkpoint of ``parent`` (or from scratch)."""

    key: str
    stage: int
    parent: str | None
    preset: str
    seed: int
    fraction: float
    pointing: str  # the cell's pointing setting: off, on, only
    threads: int
    bench: str | None  # BenchJob key of this stage's benchmark examples (stages 2, 3)
    vocab: str | None  # BenchJob key whose texts build the tokenizer (parentless stages)
    steps: int = 0  # for ordering and progress only
    config: Any = None  # the trainer's StageConfig of this stage
    pool: int = 0  # scenes per world stream (`TrainConfig.pool`): the preset's pool x the data fraction
    pools: tuple[tuple[str, int], ...] = ()  # streams with their own pool (noisy×K captions: K x pool)
    cells: str = ""  # what the cells that share it have in common, for progress lines ("pointing any")


@dataclass(frozen=True)
class EvalJob:
    """Evaluate a trained checkpoint on the grid's tasks. Cells whose chains end in the same
    checkpoint share one evaluation (e.g. stage-1 cells with pointing on and off)."""

    key: str
    train: str  # stage key of the checkpoint
    label: str  # the first cell that asked for it
    spec: GridSpec

    @property
    def run_name(self) -> str:
        return f"{RUNS}/{self.key}"


@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]
    bench: dict[str, BenchJob]
    stages: dict[str, StageJob]
    evals: dict[str, EvalJob]  # distinct evaluations
    chains: dict[Cell, tuple[str, ...]]  # cell -> its stage keys, first to last
    cell_eval: dict[Cell, str]  # cell -> its evaluation key

    @property
    def naive_trainings(self) -> int:
        """Stage trainings without sharing: every cell trains its own chain."""
        return sum(len(chain) for chain in self.chains.values())

    @property
    def avoided(self) -> int:
        return self.naive_trainings - len(self.stages)


def digest(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:n]


@functools.cache
def source_digest(*packages: str) -> str:
    """sha256 over the ``.py`` files of the named modules/packages (their code is part of a key)."""
    import importlib.util

    h = hashlib.sha256()
    for name in packages:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for f in files:
            h.update(f.relative_to(origin.parent).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


TRAIN_CODE = ("molmo_eval.reference_model", "molmo_eval.training", "molmo_eval.grid.jobs")
EVAL_CODE = (
    "molmo_eval.grid.jobs",
    "molmo_eval.tasks",
    "molmo_eval.metrics",
    "molmo_eval.parsing",
    "molmo_eval.run.scoring",
    "molmo_eval.core.task",
    "molmo_eval.models.reference",
)


def full_images(preset: str) -> int:
    """Training images of the preset's full schedule, every stage the trainer runs for ``1+2+3``
    (the encoder pre-training included): the denominator of a data count."""
    from molmo_eval.reference_model import train as rt

    return sum(s.steps * s.batch_size for s in rt.stage_plan(preset, stages=(1, 2, 3)))


def stream_pools(preset: str, fraction: float, captions: str) -> tuple[int, tuple[tuple[str, int], ...]]:
    """Scenes per world stream for a cell (`reference_model.train.TrainConfig.pool`, as `molmo-eval
    train` uses them): the preset's pool scaled by the data fraction, so a smaller data setting sees
    fewer distinct images the same number of times, not the same images fewer times; noisy×K captions
    come from K times as many scenes ("10M noisy vs 1M clean images"). 0 (a preset without a pool)
    stays 0: every scene new."""
    from molmo_eval.grid.recipe import NOISY_CAPTIONS
    from molmo_eval.grid.spec import noisy_scale
    from molmo_eval.reference_model.train import POOL

    base = POOL.get(preset, 0)
    pool = max(1, round(base * fraction)) if base else 0
    k = noisy_scale(captions)
    return pool, (((NOISY_CAPTIONS, pool * k),) if pool and k else ())


def make_plan(spec: GridSpec, contents: Mapping[str, Mapping[str, str]] | None = None) -> Plan:
    """Cells, the distinct stage trainings and the evaluations of ``spec``.

    ``contents`` maps a benchmark-examples job key to the content digest of each of its sources as
    the trainer sees them (`bench_contents`); without it (examples not built yet) every such source
    counts as different for pointing on and off, which can only share less."""
    from molmo_eval.grid.recipe import cell_stages, trains_point_tokens
    from molmo_eval.reference_model.config import PRESETS, preset

    if spec.preset not in PRESETS:
        raise ConfigError(f"--preset {spec.preset!r}: expected one of {', '.join(PRESETS)}")
    total = full_images(spec.preset)
    model = preset(spec.preset).to_json()
    code = source_digest(*TRAIN_CODE)
    bench: dict[str, BenchJob] = {}
    stages: dict[str, StageJob] = {}
    chains: dict[Cell, tuple[str, ...]] = {}
    users: dict[str, list[Cell]] = {}  # stage key -> the cells whose chains contain it

    def bench_job(seed: int, pointing: bool) -> str:
        key = "bench-" + digest({"size": spec.bench_size, "seed": seed, "pointing": pointing, "code": code})
        bench.setdefault(key, BenchJob(key, spec.bench_size, seed, pointing))
        return key

    def data(source: str, pointing: bool, b: str | None) -> str:
        """What a mixture source contributes to a stage key: the same string iff the same data."""
        if source in POINT_FREE_SOURCES:
            return f"world:{source}"
        if source in WORLD_SOURCES:
            return f"world:{source}:pointing={pointing}"
        if b is not None and contents is not None and source in contents.get(b, {}):
            return f"{source}:{contents[b][source]}"
        return f"{source}:{b}"

    for cell in spec.cells():
        seed, fraction = cell.seed, round(cell.data.resolve(total), 6)
        tokens = trains_point_tokens(cell.pointing)
        pool, pools = stream_pools(spec.preset, fraction, cell.captions)
        parent: str | None = None
        keys = []
        # the trainer's own plan for the cell (it may add stages, e.g. the encoder pre-training stage 0)
        for stage in cell_stages(spec.preset, cell, fraction, spec.bench):
            k = stage.number
            uses_bench = any(src in BENCH_SOURCES for src, w in stage.mixture.items() if w > 0)
            b = bench_job(seed, tokens) if uses_bench else None
            vocab = bench_job(seed, True) if spec.bench and parent is None else None
            own = tuple((n, p) for n, p in pools if stage.mixture.get(n, 0) > 0)  # streams it reads
            content = {
                "format": GRID_FORMAT,
                "stage": _jsonable(stage),
                "parent": parent,
                "model": model,
                "seed": seed,
                "threads": spec.threads,
                "vocab": vocab,
                "pool": [pool, [list(p) for p in own]],
                "code": code,
                "data": sorted(data(src, tokens, b) for src, w in stage.mixture.items() if w > 0),
            }
            key = f"stage{k}-" + digest(content)
            stages.setdefault(
                key,
                StageJob(
                    key,
                    k,
                    parent,
                    spec.preset,
                    seed,
                    fraction,
                    cell.pointing,
                    spec.threads,
                    b,
                    vocab,
                    stage.steps,
                    stage,
                    pool,
                    own,
                ),
            )
            keys.append(key)
            users.setdefault(key, []).append(cell)
            parent = key
        chains[cell] = tuple(keys)
    stages = {k: replace(j, cells=_shared(users[k])) for k, j in stages.items()}
    ecode = source_digest(*EVAL_CODE)
    evals: dict[str, EvalJob] = {}
    cell_eval: dict[Cell, str] = {}
    for cell in spec.cells():
        content = {
            "train": chains[cell][-1],
            "tasks": list(spec.tasks),
            "limit": spec.limit,
            "batch_size": spec.batch_size,
            "bootstrap": spec.bootstrap,
            "data_root": spec.data_root,
            "seed": spec.eval_seed,
            "threads": spec.threads,
            "code": ecode,
        }
        key = digest(content, 12)
        evals.setdefault(key, EvalJob(key, chains[cell][-1], cell.label, spec))
        cell_eval[cell] = key
    return Plan(tuple(spec.cells()), bench, stages, evals, chains, cell_eval)


def _shared(cells: list[Cell]) -> str:
    """``data 1, pointing on/only, noisy×10 captions, seed 0``: the settings of the cells that share
    a stage, in the order the grid lists them."""

    def values(get: Any) -> str:
        return "/".join(dict.fromkeys(get(c) for c in cells))

    captions = values(lambda c: c.captions)
    cap = "" if captions == "clean" else f", {captions} captions"
    return (
        f"data {values(lambda c: c.data.text)}, pointing {values(lambda c: c.pointing)}{cap}, "
        f"seed {values(lambda c: str(c.seed))}"
    )


def _jsonable(obj: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else obj


def describe_plan(plan: Plan) -> str:
    by_stage: dict[int, int] = {}
    for s in plan.stages.values():
        by_stage[s.stage] = by_stage.get(s.stage, 0) + 1
    parts = ", ".join(f"stage {k}: {v}" for k, v in sorted(by_stage.items()))
    return (
        f"{len(plan.cells)} cells; {len(plan.stages)} stage trainings ({parts}) instead of "
        f"{plan.naive_trainings} without prefix sharing ({plan.avoided} avoided); "
        f"{len(plan.evals)} evaluations"
    )

"""Ablation grids of the reference model: axes -> cells -> a graph of jobs -> a grid record.

    GridSpec (axes: stages x data size x pointing [x seed], tasks, preset)
      -> cells (the cross product)
      -> plan: one training job per *distinct* stage, one evaluation job per cell
      -> executors.run_graph (local, pool or Ray)
      -> OUT/grid.json: the spec and every cell's RunRecord (what `molmo-eval report` reads)

Stage-prefix sharing: a cell with stages ``1+2+3`` is the chain stage 1 -> stage 2 -> stage 3, each
stage trained from the previous stage's checkpoint (``--init``). A stage job is keyed by everything
that determines its weights: the stage's own configuration (`reference_model.train.stage_plan`), the
model preset, seed, data fraction, torch threads, the benchmark-format data, the trainer's source
code and the key of the stage before it. Cells that agree on a prefix therefore share its
checkpoints: stage 1 of ``1+2+3`` *is* stage 1 of ``1``. The pointing switch only changes data that
mention points, so it is part of a stage's key only when the stage's mixture has a source with point
pairs (stage 1 trains on captions alone, which have none, so it is shared by pointing on and off).
All stages with no parent start from one tokenizer per grid (the benchmark texts with pointing on),
so a stage's vocabulary never depends on which cells asked for it.

Caching: finished checkpoints live in ``CACHE/stages/<key>/checkpoint`` and finished evaluations in
``OUT/runs/<key>/`` (normal run directories; cells whose chains end in the same checkpoint share
one); a job whose output exists is skipped, so a
re-run of a finished grid does nothing and an interrupted grid resumes (a stage interrupted mid-way
resumes from its last saved step). Evaluation keys also cover the scoring code, and re-scoring after a
change is cheap because model outputs come from the response cache (``CACHE/responses``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError, DataError
from molmo_eval.core.types import RunRecord
from molmo_eval.grid_jobs import (
    BENCH_INDEX,
    bench_contents,
    bench_dir,
    build_bench,
    checkpoint_dir,
    evaluate_cell,
    train_stage,
)
from molmo_eval.run.records import RESULTS, atomic_write, read_record

GRID_FILE = "grid.json"
RUNS = "runs"  # evaluation run directories inside the grid folder
GRID_FORMAT = 1
FORMAT_KEY = "molmo_eval_grid"
AXES = ("stages", "data", "pointing", "seed")
AXIS_ALIASES = {
    "stage": "stages",
    "stages": "stages",
    "data": "data",
    "data_size": "data",
    "size": "data",
    "fraction": "data",
    "pointing": "pointing",
    "point": "pointing",
    "seed": "seed",
    "seeds": "seed",
}
WORLD_SOURCES = frozenset({"cap", "ask", "point"})  # the world's training streams (reference_model.data)
# sources that never hold a point: captions and questions (tests/test_grid.py checks), and the scenes of
# the encoder pre-training (stage 0: dense patch labels, no text)
POINT_FREE_SOURCES = frozenset({"cap", "ask", "scenes"})
BENCH_SOURCES = frozenset({"bench_ask", "bench_point"})  # benchmark-format examples (`molmo-eval train`)
EVAL_COST = 40.0  # an evaluation's rough cost in training steps (ordering only)


# --- axis values -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSize:
    """A data-size setting: a fraction of the preset's full schedule (``0.25``, ``25%``, ``2`` for
    twice the schedule) or a number of training images over all stages, written with ``img``
    (``5600img``)."""

    fraction: float | None = None
    count: int | None = None

    @classmethod
    def parse(cls, text: str | float | int) -> DataSize:
        s = str(text).strip().lower()
        try:
            if s.endswith("img"):
                n = int(s[:-3].strip())
                if n < 1:
                    raise ValueError
                return cls(count=n)
            v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
        except ValueError:
            raise ConfigError(
                f"--grid data={text}: expected a fraction of the schedule (0.25, 25%) or an image "
                f"count (5600img)"
            ) from None
        if not (0 < v <= 10) or math.isnan(v):
            raise ConfigError(f"--grid data={text}: a fraction must be in (0, 10]")
        return cls(fraction=v)

    def resolve(self, full_images: int) -> float:
        return self.fraction if self.fraction is not None else (self.count or 0) / full_images

    @property
    def text(self) -> str:
        return f"{self.count}img" if self.count is not None else f"{self.fraction:g}"


def parse_stages(text: str | int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(text, (list, tuple)):
        stages = tuple(int(s) for s in text)
    else:
        try:
            stages = tuple(int(s) for s in str(text).replace(",", "+").split("+"))
        except ValueError:
            stages = ()
    if not stages or any(s not in (1, 2, 3) for s in stages) or list(stages) != sorted(set(stages)):
        raise ConfigError(
            f"--grid stages={text}: expected increasing stages from 1, 2, 3 joined by '+' (1+2+3)"
        )
    return stages


def parse_pointing(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    s = str(text).strip().lower()
    if s in ("on", "yes", "true", "1"):
        return True
    if s in ("off", "no", "false", "0"):
        return False
    raise ConfigError(f"--grid pointing={text}: expected on or off")


def stages_text(stages: Sequence[int]) -> str:
    return "+".join(map(str, stages))


# --- the spec ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridSpec:
    stages: tuple[tuple[int, ...], ...] = ((1,), (1, 2), (1, 2, 3))
    data: tuple[DataSize, ...] = (DataSize(1.0),)
    pointing: tuple[bool, ...] = (True,)
    seed: tuple[int, ...] = (0,)
    tasks: tuple[str, ...] = ()
    preset: str = "small"
    limit: int | None = None  # evaluation samples per split (None: all)
    bench: bool = True  # benchmark-format training examples in stages 2 and 3 (as `molmo-eval train`)
    bench_size: str = "small"
    threads: int = 1  # torch threads of every job: fixed, so numbers do not depend on the executor
    batch_size: int = 16  # evaluation batch size
    bootstrap: int = 1000
    data_root: str | None = None  # evaluation data (None: the embedded mini world)
    eval_seed: int = 0

    def cells(self) -> list[Cell]:
        return [
            Cell(st, d, p, s)
            for st in self.stages
            for d in self.data
            for p in self.pointing
            for s in self.seed
        ]

    def axis_values(self, axis: str) -> list[str]:
        vals = {
            "stages": [stages_text(s) for s in self.stages],
            "data": [d.text for d in self.data],
            "pointing": ["on" if p else "off" for p in self.pointing],
            "seed": [str(s) for s in self.seed],
        }
        return vals[axis]

    @property
    def varying(self) -> tuple[str, ...]:
        """The axes shown in tables: stages, data and pointing always, seed when it varies."""
        return tuple(a for a in AXES if a != "seed" or len(self.seed) > 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": [stages_text(s) for s in self.stages],
            "data": [d.text for d in self.data],
            "pointing": ["on" if p else "off" for p in self.pointing],
            "seed": list(self.seed),
            **{
                f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)
                if f.name not in AXES
            },
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GridSpec:
        return build_spec({a: d[a] for a in AXES if a in d}, {k: v for k, v in d.items() if k not in AXES})


@dataclass(frozen=True)
class Cell:
    stages: tuple[int, ...]
    data: DataSize
    pointing: bool
    seed: int = 0

    def coords(self) -> dict[str, str]:
        return {
            "stages": stages_text(self.stages),
            "data": self.data.text,
            "pointing": "on" if self.pointing else "off",
            "seed": str(self.seed),
        }

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.coords().items())

    @property
    def slug(self) -> str:
        c = self.coords()
        return f"s{c['stages']}_d{c['data']}_p{c['pointing']}_seed{c['seed']}"


_SETTINGS = {f.name: f for f in fields(GridSpec) if f.name not in AXES}


def build_spec(axes: Mapping[str, Any], settings: Mapping[str, Any]) -> GridSpec:
    """Validate axis values and settings (all problems at once) into a GridSpec."""
    problems: list[str] = []
    kw: dict[str, Any] = {}
    parsers: dict[str, Callable[[Any], Any]] = {
        "stages": parse_stages,
        "data": DataSize.parse,
        "pointing": parse_pointing,
        "seed": _parse_seed,
    }
    for raw, values in axes.items():
        axis = AXIS_ALIASES.get(str(raw).strip().lower())
        if axis is None:
            problems.append(f"--grid {raw}=...: unknown axis (expected one of {', '.join(AXES)})")
            continue
        vals = (
            values if isinstance(values, (list, tuple)) else [v for v in str(values).split(",") if v.strip()]
        )
        if not vals:
            problems.append(f"--grid {raw}=: give at least one value")
            continue
        parsed = []
        for v in vals:
            try:
                parsed.append(parsers[axis](v.strip() if isinstance(v, str) else v))
            except ConfigError as e:
                problems += e.problems
        if len(set(parsed)) != len(parsed):
            problems.append(f"--grid {axis}: a value is given twice")
        kw[axis] = tuple(parsed)
    for key, value in settings.items():
        if key not in _SETTINGS:
            problems.append(f"unknown grid setting {key!r} (expected one of {', '.join(sorted(_SETTINGS))})")
            continue
        kw[key] = value
    kw["tasks"] = (
        tuple(t.strip() for t in (kw.get("tasks") or ()) if t and t.strip())
        if not isinstance(kw.get("tasks"), str)
        else tuple(t.strip() for t in kw["tasks"].split(",") if t.strip())
    )
    if not kw["tasks"]:
        problems.append("--tasks: give the tasks every cell is evaluated on")
    for key in ("threads", "batch_size"):
        if key in kw and (not isinstance(kw[key], int) or kw[key] < 1):
            problems.append(f"{key}: expected a positive integer, got {kw[key]!r}")
    for key in ("limit", "bootstrap"):
        if kw.get(key) is not None and (not isinstance(kw[key], int) or kw[key] < 0):
            problems.append(f"{key}: expected a non-negative integer, got {kw[key]!r}")
    if problems:
        raise ConfigError(problems)
    return GridSpec(**kw)


def _parse_seed(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ConfigError(f"--grid seed={v}: expected an integer") from None


def parse_grid_flags(flags: Sequence[str]) -> dict[str, str]:
    """``["stages=1,1+2", "data=0.5,1"]`` -> {axis: "v1,v2"}; a repeated axis is an error."""
    out: dict[str, str] = {}
    problems = []
    for flag in flags:
        name, sep, values = flag.partition("=")
        if not sep or not name.strip():
            problems.append(f"--grid {flag!r}: expected AXIS=V1,V2,... (axes: {', '.join(AXES)})")
            continue
        axis = AXIS_ALIASES.get(name.strip().lower(), name.strip())
        if axis in out:
            problems.append(f"--grid {axis} is given twice")
        out[axis] = values
    if problems:
        raise ConfigError(problems)
    return out


def load_spec(config: Path | None, grid_flags: Sequence[str], overrides: Mapping[str, Any]) -> GridSpec:
    """A TOML file (top-level settings + a ``[grid]`` table of axes), then ``--grid`` flags and other
    flags on top."""
    axes: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    if config is not None:
        import tomllib

        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("grid configuration not found", path=config) from None
        except tomllib.TOMLDecodeError as e:
            raise DataError(f"not valid TOML ({e})", path=config) from None
        table = data.pop("grid", {})
        if not isinstance(table, dict):
            raise DataError("expected a table of axes", path=config, field="grid")
        axes.update({AXIS_ALIASES.get(str(k), str(k)): v for k, v in table.items()})
        settings.update(data)
    axes.update(parse_grid_flags(grid_flags))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return build_spec(axes, settings)


# --- jobs and the plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchJob:
    """Write the benchmark-format training examples (one pointing setting) to the cache."""

    key: str
    size: str
    seed: int
    pointing: bool


@dataclass(frozen=True)
class StageJob:
    """Train one stage, starting from the checkpoint of ``parent`` (or from scratch)."""

    key: str
    stage: int
    parent: str | None
    preset: str
    seed: int
    fraction: float
    pointing: bool
    threads: int
    bench: str | None  # BenchJob key of this stage's benchmark examples (stages 2, 3)
    vocab: str | None  # BenchJob key whose texts build the tokenizer (parentless stages)
    steps: int = 0  # for ordering and progress only
    config: Any = None  # the trainer's StageConfig of this stage


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


TRAIN_CODE = ("molmo_eval.reference_model", "molmo_eval.commands.train", "molmo_eval.grid_jobs")
EVAL_CODE = (
    "molmo_eval.grid_jobs",
    "molmo_eval.tasks",
    "molmo_eval.metrics",
    "molmo_eval.parsing",
    "molmo_eval.run.scoring",
    "molmo_eval.metrics.stats",
    "molmo_eval.core.task",
    "molmo_eval.models.reference",
)


def full_images(preset: str) -> int:
    """Training images of the preset's full schedule, every stage the trainer runs for ``1+2+3``
    (the encoder pre-training included): the denominator of a data count."""
    from molmo_eval.reference_model import train as rt

    return sum(s.steps * s.batch_size for s in rt.stage_plan(preset, stages=(1, 2, 3)))


def make_plan(spec: GridSpec, contents: Mapping[str, Mapping[str, str]] | None = None) -> Plan:
    """Cells, the distinct stage trainings and the evaluations of ``spec``.

    ``contents`` maps a benchmark-examples job key to the content digest of each of its sources as
    the trainer sees them (`bench_contents`); without it (examples not built yet) every such source
    counts as different for pointing on and off, which can only share less."""
    from molmo_eval.reference_model import train as rt
    from molmo_eval.reference_model.config import PRESETS, preset

    if spec.preset not in PRESETS:
        raise ConfigError(f"--preset {spec.preset!r}: expected one of {', '.join(PRESETS)}")
    total = full_images(spec.preset)
    model = preset(spec.preset).to_json()
    code = source_digest(*TRAIN_CODE)
    bench: dict[str, BenchJob] = {}
    stages: dict[str, StageJob] = {}
    chains: dict[Cell, tuple[str, ...]] = {}

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
        parent: str | None = None
        keys = []
        # the trainer's own plan for the cell (it may add stages, e.g. the encoder pre-training stage 0)
        for stage in rt.stage_plan(
            spec.preset, pointing=cell.pointing, fraction=fraction, stages=cell.stages, bench=spec.bench
        ):
            k = stage.number
            uses_bench = any(src in BENCH_SOURCES for src, w in stage.mixture.items() if w > 0)
            b = bench_job(seed, cell.pointing) if uses_bench else None
            vocab = bench_job(seed, True) if spec.bench and parent is None else None
            content = {
                "format": GRID_FORMAT,
                "stage": _jsonable(stage),
                "parent": parent,
                "model": model,
                "seed": seed,
                "threads": spec.threads,
                "vocab": vocab,
                "code": code,
                "data": sorted(data(src, cell.pointing, b) for src, w in stage.mixture.items() if w > 0),
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
                ),
            )
            keys.append(key)
            parent = key
        chains[cell] = tuple(keys)
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


def _jsonable(obj: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else obj


# --- running a grid ----------------------------------------------------------------------------


@dataclass
class GridRun:
    """What `run_grid` did (also written into the grid record's ``plan`` block)."""

    plan: Plan
    trained: int = 0  # stage trainings run now
    reused: int = 0  # stage checkpoints found in the cache
    evaluated: int = 0
    eval_cached: int = 0
    seconds: float = 0.0
    job_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        p = self.plan
        return {
            "cells": len(p.cells),
            "stage_trainings": len(p.stages),
            "naive_stage_trainings": p.naive_trainings,
            "avoided_by_prefix_sharing": p.avoided,
            "trained": self.trained,
            "reused_from_cache": self.reused,
            "evaluated": self.evaluated,
            "evaluations_cached": self.eval_cached,
        }


def run_grid(
    spec: GridSpec,
    out: Path,
    executor: Any,
    *,
    cache: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> GridRun:
    """Run (or resume) every cell of ``spec`` into ``out``; writes ``out/grid.json`` as cells finish.

    First the benchmark-format examples are built (stage keys depend on their content), then the
    stages and evaluations that are not in the cache yet run as one graph of jobs."""
    from molmo_eval.executors import Job, run_graph

    out = Path(out)
    cache = Path(cache) if cache is not None else out / "cache"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    if spec.data_root is None:
        from molmo_eval.data.embedded import default_data_root

        default_data_root()  # generate the embedded world once, before any worker races for it
    first = make_plan(spec)
    missing = [k for k in first.bench if not (bench_dir(cache, k) / BENCH_INDEX).is_file()]
    if missing:
        say(f"building benchmark-format training examples ({len(missing)} setting(s))")
        run_graph(
            [
                Job(k, build_bench, (first.bench[k], str(cache)), label=_bench_label(first.bench[k]))
                for k in missing
            ],
            executor,
        )
    plan = make_plan(spec, bench_contents(cache, list(first.bench)))
    state = GridRun(plan)
    done_evals = {e.key for e in plan.evals.values() if (out / e.run_name / RESULTS).is_file()}
    state.eval_cached = len(done_evals)
    needed = _needed_stages(plan, done_evals, cache)
    state.reused = len(_all_needed_chain(plan, done_evals) - set(needed))
    jobs: list[Job] = []
    for key in needed:
        s = plan.stages[key]
        deps = (s.parent,) if s.parent in needed else ()
        jobs.append(Job(key, train_stage, (s, str(cache)), deps, cost=float(s.steps), label=_stage_label(s)))
    for e in plan.evals.values():
        if e.key not in done_evals:
            jobs.append(
                Job(
                    e.key,
                    evaluate_cell,
                    (e, str(cache), str(out)),
                    (e.train,) if e.train in needed else (),
                    cost=EVAL_COST,
                    label=f"evaluate {e.label}",
                )
            )

    def on_done(job: Any, result: dict[str, Any]) -> None:
        state.job_seconds[job.key] = round(result.get("seconds", 0.0), 2)
        if job.fn is train_stage:
            state.trained += 1
        else:
            state.evaluated += 1
            write_grid(out, spec, plan, state, complete=False)
        say(f"[{len(state.job_seconds)}/{len(jobs)}] {job.label} ({result.get('seconds', 0.0):.1f} s)")

    say(
        f"grid: {describe_plan(plan)}; {len(needed)} stage(s) to train, "
        f"{len(plan.evals) - len(done_evals)} evaluation(s) to run, on {executor.name} x{executor.workers}"
    )
    finished = False
    try:
        run_graph(jobs, executor, on_done)
        finished = True
    finally:  # also after a failure: the record lists the cells done so far (complete: false)
        state.seconds = time.perf_counter() - t0
        write_grid(out, spec, plan, state, complete=finished, executor=executor)
    return state


def _bench_label(b: BenchJob) -> str:
    return f"benchmark examples ({b.size}, seed {b.seed}, pointing {'on' if b.pointing else 'off'})"


def _stage_label(s: StageJob) -> str:
    return (
        f"train stage {s.stage} (data {s.fraction:g}, pointing {'on' if s.pointing else 'off'}, "
        f"seed {s.seed},"
        f" {s.steps} steps)"
    )


def _all_needed_chain(plan: Plan, done_evals: set[str]) -> set[str]:
    return {k for c, e in plan.cell_eval.items() if e not in done_evals for k in plan.chains[c]}


def _needed_stages(plan: Plan, done_evals: set[str], cache: Path) -> list[str]:
    """Stage keys to train, parents first: the chains of unfinished cells, cut at the last stage
    whose checkpoint is already in the cache."""
    from molmo_eval.reference_model.checkpoint import is_checkpoint

    needed: list[str] = []
    for cell, e in plan.cell_eval.items():
        if e in done_evals:
            continue
        for key in plan.chains[cell]:
            if key not in needed and not is_checkpoint(checkpoint_dir(cache, key)):
                needed.append(key)
    return sorted(needed, key=lambda k: (plan.stages[k].stage, needed.index(k)))


# --- the grid record ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GridCell:
    coords: Mapping[str, str]
    label: str
    key: str
    run_dir: Path
    record: RunRecord


@dataclass(frozen=True)
class GridRecord:
    path: Path  # the grid.json file
    spec: GridSpec
    cells: tuple[GridCell, ...]
    complete: bool
    plan: Mapping[str, Any]


def write_grid(
    out: Path, spec: GridSpec, plan: Plan, state: GridRun, *, complete: bool, executor: Any = None
) -> Path:
    """``out/grid.json``: the spec, the plan counts and every finished cell's RunRecord, atomically."""
    cells = []
    records: dict[str, RunRecord] = {}
    for cell in plan.cells:
        e = plan.evals[plan.cell_eval[cell]]
        if e.key not in records:
            if not (out / e.run_name / RESULTS).is_file():
                continue
            records[e.key] = read_record(out / e.run_name)
        cells.append(cell_doc(cell, e.key, e.run_name, records[e.key], plan.chains[cell]))
    extra: dict[str, Any] = {"plan": state.to_json()}
    if executor is not None:
        extra["executor"] = {"name": executor.name, "workers": executor.workers}
    extra["timings"] = {"total": round(state.seconds, 2), "jobs": dict(sorted(state.job_seconds.items()))}
    return save_grid(out, spec, cells, complete=complete and len(cells) == len(plan.cells), extra=extra)


def cell_doc(cell: Cell, key: str, run: str, record: RunRecord, stages: Sequence[str] = ()) -> dict[str, Any]:
    """One cell of a grid record; ``run`` is its run directory relative to the grid folder."""
    return {
        "coords": cell.coords(),
        "label": cell.label,
        "key": key,
        "stages": list(stages),
        "run": run,
        "record": record.to_json(),
    }


def save_grid(
    out: Path,
    spec: GridSpec,
    cells: Sequence[Mapping[str, Any]],
    *,
    complete: bool,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a grid record (``out/grid.json``) atomically."""
    doc = {
        FORMAT_KEY: GRID_FORMAT,
        "complete": complete,
        "spec": spec.to_json(),
        **(extra or {}),
        "cells": list(cells),
    }
    path = Path(out) / GRID_FILE
    atomic_write(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return path


def is_grid(path: Path | str) -> bool:
    p = Path(path)
    return (p / GRID_FILE).is_file() if p.is_dir() else p.name == GRID_FILE or _has_grid_key(p)


def _has_grid_key(p: Path) -> bool:
    if not p.is_file() or p.suffix != ".json":
        return False
    with open(p, encoding="utf-8") as f:
        head = f.read(200)
    return FORMAT_KEY in head


def read_grid(path: Path | str) -> GridRecord:
    """Read a grid record from its folder or its ``grid.json``."""
    p = Path(path)
    file = p / GRID_FILE if p.is_dir() else p
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no grid record found", path=file, expected=f"a folder holding {GRID_FILE}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"grid record is not valid JSON ({e})", path=file) from None
    if not isinstance(doc, dict) or not isinstance(doc.get(FORMAT_KEY), int):
        raise DataError("not a molmo-eval grid record", path=file, field=FORMAT_KEY)
    if doc[FORMAT_KEY] > GRID_FORMAT:
        raise DataError(
            f"written by a newer molmo-eval (grid format {doc[FORMAT_KEY]})",
            path=file,
            field=FORMAT_KEY,
            expected=f"<= {GRID_FORMAT}",
        )
    try:
        spec = GridSpec.from_json(doc["spec"])
        cells = tuple(
            GridCell(
                c["coords"], c["label"], c["key"], file.parent / c["run"], RunRecord.from_json(c["record"])
            )
            for c in doc["cells"]
        )
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"malformed grid record ({type(e).__name__}: {e})", path=file) from None
    return GridRecord(file, spec, cells, bool(doc.get("complete")), doc.get("plan", {}))


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


def eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)

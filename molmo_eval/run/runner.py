"""The evaluation pipeline (DESIGN §3), as a straight line of short stages:

    check the output folder and the cache folder -> resolve model and tasks -> load every split
    (all data errors reported before any model call)
    -> for each batch: load images (background threads) -> build requests -> cache lookup
       -> model.generate on misses -> cache commit -> parse + score (per-sample guard, `run.guard`)
    -> finalize + aggregate (bootstrap CIs) -> RunRecord -> the run folder as a unit (`run.rundir`)

The cache is committed after every batch, so a run killed at any point and started again
finishes with exactly the samples and metrics of an uninterrupted run. A sample that fails (its
image, the model, or parsing and scoring its output) is recorded and the run goes on; the run's
status is ``partial`` (exit 1) when more samples failed than ``--max-failures`` accepts (none by
default), and the same command retries them. `evaluate` is the Python API; the CLI is a thin shell
over `run`.
"""

from __future__ import annotations

import datetime as _dt
import math
import platform
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from molmo_eval.core import registry
from molmo_eval.core.config import RunConfig, build, generation_settings, limit_count
from molmo_eval.core.errors import ConfigError, MolmoEvalError
from molmo_eval.core.heap import gc_frozen
from molmo_eval.core.model import Model
from molmo_eval.core.task import Task
from molmo_eval.core.types import (
    CoordSpace,
    Generation,
    GenerationSettings,
    Image,
    ModelInfo,
    Request,
    RunRecord,
    Sample,
    SampleScore,
    TaskResult,
)
from molmo_eval.core.version import __version__
from molmo_eval.data.files import file_digest
from molmo_eval.data.images import load_image, with_pixels
from molmo_eval.run import distributed, records, reuse, rundir
from molmo_eval.run.cache import ResponseCache, check_cache_dir, default_cache_dir, request_key
from molmo_eval.run.distributed import DistGroup
from molmo_eval.run.guard import describe, generate_safe, score_samples
from molmo_eval.run.loading import load_split
from molmo_eval.run.progress import Progress
from molmo_eval.run.samplelog import LineSpool, Parts, SampleLog, line_parts
from molmo_eval.run.scores import TaskRows
from molmo_eval.run.scoring import summarize_columns, task_config

__all__ = ["Outcome", "evaluate", "generate_safe", "run"]

PREFETCH_BATCHES = 2


@dataclass
class PreparedTask:
    task: Task
    data_dir: Path
    samples: list[Sample]
    digests: dict[str, str]
    n_original: int = 0  # samples in the splits before --limit


@dataclass
class Outcome:
    """What a run produced: the record and where it was written."""

    record: RunRecord
    run_dir: Path | None
    model_calls: int = 0  # requests this process sent to the model (0 for a finished run re-run from cache)
    is_main: bool = True  # False on torchrun ranks other than 0, which print and write nothing

    @property
    def exit_code(self) -> int:
        return 0 if self.record.status == "ok" else 1

    @property
    def lines(self) -> list[dict[str, Any]]:
        """The per-sample lines, read back from the run's ``samples.jsonl`` (written as the samples were
        scored, never held in memory); none without ``--log-samples`` or on other torchrun ranks."""
        if self.run_dir is None or not (self.run_dir / records.SAMPLES).is_file():
            return []
        return list(records.iter_samples(self.run_dir))


# --- public API ------------------------------------------------------------------------------

def evaluate(tasks: str | Sequence[str], model: str | Model = "reference", *,
             model_args: dict[str, str] | None = None, progress: bool = False, **settings: Any) -> RunRecord:
    """Evaluate ``model`` (a registered name or a `Model` object) on ``tasks`` and return the record.

    ``settings`` are RunConfig fields: batch_size, limit (N groups of each split, or a fraction < 1),
    seed, output_path, overwrite, data_root, splits, variants, gen_kwargs, max_failures (a count or
    "P%"), use_cache, cache_dir, bootstrap, ... (see `molmo_eval.core.config`). The record's
    ``status`` says whether every sample scored ("ok")."""
    name = model if isinstance(model, str) else model.name
    cfg = build(tasks, model=name, model_args=model_args or {}, **settings)
    return run(cfg, model=None if isinstance(model, str) else model, show_progress=progress).record


def run(cfg: RunConfig, *, model: Model | None = None, show_progress: bool = True) -> Outcome:
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    group = distributed.from_env(cfg.device)  # torchrun: this process's rank and the world size
    if group is not None:
        cfg = replace(cfg, device=distributed.rank_device(cfg.device, group))
        show_progress = show_progress and group.is_main
    try:
        return _run(cfg, model, show_progress, group, t0, timings)
    finally:
        if group is not None and group.owned:
            group.close()


def _run(cfg: RunConfig, model: Model | None, show_progress: bool, group: DistGroup | None, t0: float,
         timings: dict[str, float]) -> Outcome:
    run_dir = check_folders(cfg, group)  # what would fail only at the end fails now
    if model is None and group is None:
        reused = reuse_finished(cfg, run_dir, t0, show_progress)
        if reused is not None:
            return reused
    prepared = prepare_tasks(cfg)  # bad input fails fast, before a model is loaded
    timings["data_load"] = time.perf_counter() - t0
    model = model or make_model(cfg)
    timings["model_load"] = time.perf_counter() - t0 - timings["data_load"]
    cache = open_cache(cfg, model)
    log = SampleLog(run_dir) if cfg.log_samples and (group is None or group.is_main) else None
    try:
        with gc_frozen():  # the loaded samples stay out of the collector's rescans (`molmo_eval.core.heap`)
            record, calls = _evaluate(cfg, model, cache, prepared, log, show_progress, group, t0, timings)
        if group is not None and not group.is_main:  # every rank returns rank 0's record; only rank 0 writes
            return Outcome(record, None, calls, is_main=False)
        record = write_run(run_dir, cfg, record, log)
    finally:
        if log is not None:
            log.discard()
    return Outcome(record, run_dir, calls)


def _evaluate(cfg: RunConfig, model: Model, cache: ResponseCache | None, prepared: list[PreparedTask],
              log: SampleLog | None, show_progress: bool, group: DistGroup | None, t0: float,
              timings: dict[str, float]) -> tuple[RunRecord, int]:
    """Every task, batch by batch; the record (rank 0's, on every rank) and this process's model calls."""
    results: dict[str, TaskResult] = {}
    errors: list[str] = []
    n_failed_total = n_samples = 0
    calls = hits = 0
    stopped = False
    allowed = failure_allowance(cfg, sum(len(p.samples) for p in prepared))
    with Progress(enabled=show_progress) as prog, ThreadPoolExecutor(cfg.workers, "molmo-img") as pool:
        for p in prepared:
            if stopped:
                errors.append(f"{p.task.name}: not run (--max-failures reached earlier)")
                continue
            limit = None if allowed is None else allowed - n_failed_total
            tr = run_task(p, model, cache, cfg, pool, prog, failure_budget=limit, group=group, log=log)
            p.samples = []  # the task is done: its samples go (what stays is in the log and the result)
            calls += tr.calls
            hits += tr.hits
            n_failed_total += tr.n_failed
            n_samples += tr.n_samples
            if tr.stopped:
                stopped = True
                errors.append(f"{p.task.name}: stopped after {tr.n_failed} failed samples "
                              f"(--max-failures {max_failures_text(cfg)})")
            if tr.result is not None:
                results[p.task.name] = tr.result
                if tr.result.n and tr.n_failed == tr.result.n:
                    errors.append(f"{p.task.name}: every sample failed ({tr.first_error})")
    if cache is not None:
        cache.close()
    model_counts = getattr(model, "counts", None)  # backends may count retries, failures, ...
    extra = {f"model_{k}": int(v) for k, v in model_counts().items()} if callable(model_counts) else {}
    if callable(getattr(model, "close", None)):
        model.close()  # type: ignore[attr-defined]
    timings["total"] = time.perf_counter() - t0
    record = RunRecord(
        run_id=uuid.uuid4().hex[:12], created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        status=run_status(errors, n_failed_total, allowed), config=cfg.to_json(), packages=versions(),
        model=ModelInfo(model.name, model.fingerprint, model.coord_space.value,
                        {k: v for k, v in cfg.to_json()["model_args"].items()}),
        tasks=results, timings=timings, n_failed=n_failed_total, errors=tuple(errors),
        counts={"samples": n_samples, "model_calls": calls, "cache_hits": hits, **extra},
        task_configs={p.task.name: run_config(p, cfg, model) for p in prepared if p.task.name in results},
        n_original={p.task.name: p.n_original for p in prepared if p.task.name in results},
        world_size=1 if group is None else group.world,
    )
    if group is not None:
        record = group.broadcast(record if group.is_main else None)
    return record, calls


def reuse_finished(cfg: RunConfig, run_dir: Path, t0: float, show_progress: bool = False) -> Outcome | None:
    """The outcome of a re-run answered from its run folder, when the folder holds this evaluation,
    finished, with every input unchanged (`molmo_eval.run.reuse`); None to run it the whole way.
    Neither a split nor the model's weights are loaded; nothing is scored again."""
    config = cfg.to_json()
    found = reuse.finished_record(run_dir, config) if reuse.wanted(config) else None
    if found is None:
        return None
    old, mtime = found
    model_counts = _unchanged_inputs(cfg, old, mtime)
    if model_counts is None:
        return None
    samples = None
    if records.SAMPLES in old.files:
        data = (run_dir / records.SAMPLES).read_bytes()
        rerun = reuse.samples_rerun(data, int(old.files[records.SAMPLES].get("lines", -1)))
        if rerun is None:
            return None
        samples = None if rerun == data else rerun.decode("utf-8")
    n = int(old.counts.get("samples", sum(tr.n for tr in old.tasks.values())))
    record = replace(old, run_id=uuid.uuid4().hex[:12],
                     created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                     timings={"total": time.perf_counter() - t0},
                     counts={"samples": n, "model_calls": 0, "cache_hits": n, **model_counts})
    from molmo_eval.run.summary import markdown_report

    record = rundir.refresh_run(run_dir, record, markdown_report(record), samples)
    if show_progress:
        print(f"{run_dir} holds this run, finished, with the same data, model and configuration: its results "
              f"are reused ({reuse.NO_REUSE_ENV}=1 scores it again from the cache)", file=sys.stderr)
    return Outcome(record, run_dir, 0)


def _unchanged_inputs(cfg: RunConfig, old: RunRecord, mtime: int) -> dict[str, int] | None:
    """The model's counts for the record (``model_loads``: 0) when the tasks (versions, configurations,
    annotation digests), the model (fingerprint) and the data and source folders (nothing modified
    after ``mtime``) are those of the record ``old``; else None."""
    try:
        tasks = resolve_tasks(cfg)
        if sorted(t.name for t in tasks) != sorted(old.tasks):
            return None
        dirs: dict[str, Path] = {}
        for task in tasks:
            tr, d = old.tasks[task.name], task_dir(task, cfg)
            files = [f for split in task_splits(task, cfg) for f in task.data_files(d, split)]
            if tr.version != task.version or {f.name: file_digest(f) for f in files} != dict(tr.data_digests):
                return None
            dirs[task.name] = d
        model = make_model(cfg)
    except (OSError, MolmoEvalError):
        return None
    try:
        configs = {t.name: run_config(PreparedTask(t, dirs[t.name], [], {}), cfg, model) for t in tasks}
        same = (model.fingerprint == old.model.fingerprint and model.name == old.model.name
                and configs == {k: dict(v) for k, v in old.task_configs.items()}
                and not reuse.changed_since(list(dirs.values()), mtime)
                and not reuse.changed_since(reuse.source_roots([*tasks, model]), mtime, suffixes=(".py",)))
        counts = getattr(model, "counts", None)
        return ({f"model_{k}": int(v) for k, v in counts().items()} if callable(counts) else {}) if same else None
    finally:
        if callable(getattr(model, "close", None)):
            model.close()  # type: ignore[attr-defined]


# --- checks before the run, and its status after it -------------------------------------------

def check_folders(cfg: RunConfig, group: DistGroup | None) -> Path:
    """The run folder (refused now if it is a file, unwritable or holds another run, see
    `molmo_eval.run.rundir`; stale temporary files removed) and the cache folder."""
    run_dir = cfg.output_path or default_output_path(cfg)
    rundir.check_output_path(run_dir, cfg.to_json(), overwrite=cfg.overwrite)
    if cfg.use_cache:
        check_cache_dir(cfg.cache_dir or default_cache_dir())
    if group is None or group.is_main:
        rundir.clean_stale(run_dir)
    return run_dir


def failure_allowance(cfg: RunConfig | Mapping[str, Any], n_samples: int) -> int | None:
    """Failed samples the run accepts (``--max-failures N`` or ``P%`` of every sample); None when no
    limit is set: the run then goes on to the end and is ``partial`` if any sample failed. ``cfg`` may
    be a record's configuration (re-scoring)."""
    get = cfg.get if isinstance(cfg, Mapping) else lambda k: getattr(cfg, k)
    count, pct = get("max_failures"), get("max_failures_pct")
    if isinstance(count, int):
        return count
    if isinstance(pct, (int, float)):
        return math.floor(pct / 100.0 * n_samples + 1e-9)
    return None


def max_failures_text(cfg: RunConfig) -> str:
    return str(cfg.max_failures) if cfg.max_failures is not None else f"{cfg.max_failures_pct:g}%"


def run_status(errors: Sequence[str], n_failed: int, allowed: int | None) -> str:
    """``failed`` when a task failed or the run stopped; ``partial`` when more samples failed than
    accepted (any, without --max-failures); else ``ok``."""
    if errors:
        return "failed"
    return "partial" if n_failed > (allowed or 0) else "ok"


# --- stages ----------------------------------------------------------------------------------

def make_model(cfg: RunConfig) -> Model:
    factory = registry.model_factory(cfg.model)
    kwargs = dict(cfg.model_args)
    if cfg.device is not None:
        kwargs["device"] = cfg.device
    try:
        model = factory(**kwargs)
    except TypeError as e:
        raise ConfigError(f"--model-args for model {cfg.model!r}: {e}") from None
    return model


def resolve_tasks(cfg: RunConfig) -> list[Task]:
    tasks, problems = [], []
    for name in cfg.tasks:
        try:
            tasks.append(registry.get_task(name, cfg.variants.get(name, cfg.variants.get("*"))))
        except MolmoEvalError as e:
            problems.append(str(e))
    if problems:
        raise ConfigError(problems)
    return tasks


def task_splits(task: Task, cfg: RunConfig) -> tuple[str, ...]:
    chosen = cfg.splits.get(task.name) or cfg.splits.get("*") or task.default_splits
    return tuple(task.check_split(s) for s in chosen)


def task_dir(task: Task, cfg: RunConfig) -> Path:
    if task.name in cfg.data_dirs:
        return cfg.data_dirs[task.name]
    root = cfg.data_root
    if root is None:
        from molmo_eval.data.embedded import default_data_root

        root = default_data_root()
    return root / task.data_dir


def prepare_tasks(cfg: RunConfig) -> list[PreparedTask]:
    """Load every split of every task up front, so that bad input fails before any model call."""
    problems: list[MolmoEvalError] = []
    out: list[PreparedTask] = []
    for task in resolve_tasks(cfg):
        try:
            splits = task_splits(task, cfg)
            d = task_dir(task, cfg)
            samples: list[Sample] = []
            digests: dict[str, str] = {}
            n_original = 0
            for split in splits:
                loaded, split_digests = load_split(task, d, split)
                n_original += len(loaded)
                samples.extend(apply_limit(task, loaded, cfg.limit))
                digests.update(split_digests)
            out.append(PreparedTask(task, d, samples, digests, n_original))
        except MolmoEvalError as e:
            problems.append(e)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigError([str(e) for e in problems])
    return out


def apply_limit(task: Task, samples: Sequence[Sample], limit: int | float | None) -> list[Sample]:
    """The samples of the first ``limit`` groups of a split (`Task.limit_group`; a fraction counts
    groups too), in file order: a metric that needs a whole group never sees part of one."""
    if limit is None:
        return list(samples)
    order: dict[str, None] = {}
    for s in samples:
        order.setdefault(task.limit_group(s), None)
    keep = set(list(order)[:limit_count(limit, len(order))])
    return [s for s in samples if task.limit_group(s) in keep]


def open_cache(cfg: RunConfig, model: Model) -> ResponseCache | None:
    if not cfg.use_cache:
        return None
    return ResponseCache(cfg.cache_dir or default_cache_dir(), model.fingerprint)


@dataclass
class TaskOutcome:
    result: TaskResult | None
    n_samples: int  # lines this task wrote (rank 0: of every rank)
    n_failed: int
    calls: int
    hits: int
    stopped: bool
    first_error: str = ""


@dataclass
class Shard:
    """What one process evaluated of a task (all of it, unless running under torchrun): per sample,
    in evaluation order, its position, its score, the image size found while loading it (None when
    the sample states its own) and its line for samples.jsonl without the scores (on disk while the
    process runs alone, `LineSpool`; a list to send to rank 0 under torchrun)."""

    index: list[int]  # positions in PreparedTask.samples
    scores: list[SampleScore] = field(default_factory=list)
    sizes: list[tuple[int, int] | None] = field(default_factory=list)
    lines: LineSpool | list[Parts] | None = None  # None: no per-sample log
    n_failed: int = 0
    n_unparseable: int = 0
    calls: int = 0
    hits: int = 0
    stopped: bool = False
    first_error: str = ""


def run_task(p: PreparedTask, model: Model, cache: ResponseCache | None, cfg: RunConfig,
             pool: ThreadPoolExecutor, prog: Progress, *, failure_budget: int | None,
             group: DistGroup | None = None, log: SampleLog | None = None) -> TaskOutcome:
    """Evaluate this process's share of a task's samples; with several processes, rank 0 gathers
    every share, restores the original order and aggregates, so results equal a single process's.
    The task's time in the record includes its aggregation and bootstrap."""
    t0 = time.perf_counter()
    rank, world = (group.rank, group.world) if group else (0, 1)
    label = p.task.name if group is None else f"{p.task.name} (rank {rank}'s share of {world})"
    mine = list(range(len(p.samples))) if world == 1 else shard_indices(p.samples, rank, world)
    keep_lines = cfg.log_samples
    shard = evaluate_shard(p, model, cache, cfg, pool, prog, mine, failure_budget, label, keep_lines)
    try:
        if group is not None:
            # plain dicts travel through pickle (a task may hold read-only mappingproxy views)
            shard.scores = [SampleScore(sc.uid, dict(sc.values), dict(sc.fields)) for sc in shard.scores]
            if isinstance(shard.lines, LineSpool):
                shard.lines = shard.lines.to_list()
            gathered = group.gather(shard)
            merged = merge_shards(gathered) if gathered is not None else None
            stopped = group.broadcast(merged.stopped if merged is not None else None)  # one decision for all
            if merged is None:  # not rank 0: rank 0 holds the result
                return TaskOutcome(None, 0, shard.n_failed, shard.calls, shard.hits, stopped, shard.first_error)
            shard = merged
        done = [p.samples[i] if size is None else _with_size(p.samples[i], size)
                for i, size in zip(shard.index, shard.sizes)]
        summary = summarize_columns(p.task, done, shard.scores, seed=cfg.seed, n_boot=cfg.bootstrap,
                                    n_failed=shard.n_failed, n_unparseable=shard.n_unparseable,
                                    digests=p.digests)
        if log is not None and shard.lines is not None:  # finalize may have added cross-sample columns
            rows = TaskRows(np.array([s.uid for s in done], dtype=object), summary.cols)
            log.add_task(p.task.name, shard.lines, summary.final, rows)
    finally:
        if isinstance(shard.lines, LineSpool):
            shard.lines.close()
    result = replace(summary.result, seconds=time.perf_counter() - t0)
    return TaskOutcome(result, len(done), shard.n_failed, shard.calls, shard.hits, shard.stopped,
                       shard.first_error)


def evaluate_shard(p: PreparedTask, model: Model, cache: ResponseCache | None, cfg: RunConfig,
                   pool: ThreadPoolExecutor, prog: Progress, index: list[int],
                   failure_budget: int | None, label: str, keep_lines: bool = True) -> Shard:
    """Images -> requests -> cached generate -> parse + score, batch by batch; each sample's line
    goes to the spool as soon as it is scored."""
    task = p.task
    style = cfg.prompt_style or model.prompt_style
    settings = generation_settings(task.generation_settings(), cfg.gen_kwargs)
    out = Shard(index=[], lines=LineSpool() if keep_lines else None)
    prog.start(label, len(index))
    batches = [index[i:i + cfg.batch_size] for i in range(0, len(index), cfg.batch_size)]
    # pixels are decoded ahead, in the background, while batches go to the model; a run answered
    # from the cache needs only bytes and digests (misses are decoded on demand, `generate_cached`)
    decode = Decoding(model.needs_pixels and cache is None)
    loaded = prefetch([[p.samples[i] for i in b] for b in batches], pool, decode)
    for idx, (batch, images) in zip(batches, loaded):
        prepared = [prepare_request(task, s, im, style, model.coord_space, settings)
                    for s, im in zip(batch, images)]
        gens, cached, n_calls = generate_cached(model, cache, [req for _, req, _ in prepared], pool)
        decode.ahead = model.needs_pixels and n_calls > 0
        out.calls += n_calls
        out.hits += sum(cached)
        sizes = [im.size if isinstance(im, Image) else None for im in images]
        scored = score_samples(task, batch, [None if err else g for (_, _, err), g in zip(prepared, gens)],
                               model.coord_space, sizes)
        b_failed = 0
        for s, (prompt, _, err), gen, hit, size, sc in zip(batch, prepared, gens, cached, sizes, scored):
            err = err or sc.error
            if err:
                b_failed += 1
                out.first_error = out.first_error or err
            elif sc.answer is not None and not sc.answer.parse_ok:
                out.n_unparseable += 1
            new_size = size if size is not None and s.image_size is None else None
            if new_size is not None:
                s = _with_size(s, new_size)
            out.scores.append(sc.score)
            out.sizes.append(new_size)
            if out.lines is not None:
                out.lines.add(line_parts(s, prompt, gen, sc.answer, error=err, cached=hit))  # type: ignore[union-attr]
        out.index.extend(idx)
        out.n_failed += b_failed
        prog.advance(len(batch), failed=b_failed)
        if failure_budget is not None and out.n_failed > failure_budget:
            out.stopped = True
            break
    prog.finish()
    return out


def prepare_request(task: Task, s: Sample, im: Image | BaseException | None, style: str, space: CoordSpace,
                    settings: GenerationSettings) -> tuple[str, Request | None, str | None]:
    """The prompt and request of one sample, or why it cannot be asked (its image, its prompt)."""
    try:
        prompt = task.prompt(s, style, space=space)
    except Exception as e:
        return "", None, describe("prompt", e)
    if isinstance(im, BaseException):
        return prompt, None, f"image: {im}"
    return prompt, Request(uid=s.uid, prompt=prompt, images=() if im is None else (im,), settings=settings,
                           answer_kind=task.answer_kind, sample_id=s.id, task=task.name), None


def shard_indices(samples: Sequence[Sample], rank: int, world: int) -> list[int]:
    """This rank's samples: whole images at a time (the questions about one image stay on one rank,
    where the model's per-image work and the decoded image are reused), images dealt in order to
    the rank with the fewest samples so far; ascending indices."""
    by_image: dict[object, list[int]] = {}
    for i, s in enumerate(samples):
        ref = s.image
        key = ("no image", i) if ref is None else ref.path or ref.b64 or ref.data
        by_image.setdefault(key, []).append(i)
    load = [0] * world
    mine: list[int] = []
    for idx in by_image.values():
        r = min(range(world), key=lambda k: (load[k], k))
        load[r] += len(idx)
        if r == rank:
            mine.extend(idx)
    return sorted(mine)


def merge_shards(shards: Sequence[Shard]) -> Shard:
    """One Shard in the original sample order from every process's share (lines as lists)."""
    rows = sorted(((i, k, sh) for sh in shards for k, i in enumerate(sh.index)), key=lambda t: t[0])
    logged = all(sh.lines is not None for sh in shards)
    merged = Shard(index=[i for i, _, _ in rows], scores=[sh.scores[k] for _, k, sh in rows],
                   sizes=[sh.sizes[k] for _, k, sh in rows],
                   lines=[sh.lines[k] for _, k, sh in rows] if logged else None)  # type: ignore[index]
    merged.n_failed = sum(sh.n_failed for sh in shards)
    merged.n_unparseable = sum(sh.n_unparseable for sh in shards)
    merged.calls = sum(sh.calls for sh in shards)
    merged.hits = sum(sh.hits for sh in shards)
    merged.stopped = any(sh.stopped for sh in shards)
    merged.first_error = next((sh.first_error for sh in shards if sh.first_error), "")
    return merged


def _with_size(s: Sample, size: tuple[int, int]) -> Sample:
    return replace(s, image_size=(int(size[0]), int(size[1])))


@dataclass
class Decoding:
    """Whether the images of batches loaded from now on are decoded ahead (the last batch went to the
    model) or read only (it was answered from the cache)."""

    ahead: bool


def prefetch(batches: Sequence[Sequence[Sample]], pool: ThreadPoolExecutor, decode: Decoding | bool
             ) -> Iterator[tuple[Sequence[Sample], list[Image | BaseException | None]]]:
    """Yield each batch with its loaded images while the next batches load in the background."""

    def submit(batch: Sequence[Sample]) -> list[Future[Image] | None]:
        pixels = decode.ahead if isinstance(decode, Decoding) else decode
        return [None if s.image is None else pool.submit(load_image, s.image, pixels) for s in batch]

    queue: deque[tuple[Sequence[Sample], list[Future[Image] | None]]] = deque()
    it = iter(batches)
    for b in it:
        queue.append((b, submit(b)))
        if len(queue) >= PREFETCH_BATCHES:
            break
    while queue:
        batch, futs = queue.popleft()
        nxt = next(it, None)
        if nxt is not None:
            queue.append((nxt, submit(nxt)))
        images: list[Image | BaseException | None] = []
        for f in futs:
            if f is None:
                images.append(None)
                continue
            try:
                images.append(f.result())
            except Exception as e:  # recorded as this sample's failure
                images.append(e)
        yield batch, images


def generate_cached(model: Model, cache: ResponseCache | None, reqs: Sequence[Request | None],
                    pool: ThreadPoolExecutor | None = None) -> tuple[list[Generation | None], list[bool], int]:
    """Cached outputs where present, the model for the rest (their pixels decoded first if the model
    needs them and they were not decoded ahead); new outputs committed at once."""
    extra = getattr(model, "cache_extra", None)
    keys = [None if r is None else request_key(model.fingerprint, r, extra(r) if extra else "") for r in reqs]
    hits = cache.get_many([k for k in keys if k is not None]) if cache is not None else {}
    todo = [i for i, (r, k) in enumerate(zip(reqs, keys)) if r is not None and k not in hits]
    gens: list[Generation | None] = [None if k is None else hits.get(k) for k in keys]
    asked = [reqs[i] for i in todo]
    if model.needs_pixels and todo:
        decoded = _decoded(asked, pool)  # type: ignore[arg-type]
        for i, d in zip(todo, decoded):  # an image that cannot be decoded fails its sample alone
            if isinstance(d, Generation):
                gens[i] = d
        todo = [i for i, d in zip(todo, decoded) if not isinstance(d, Generation)]
        asked = [d for d in decoded if not isinstance(d, Generation)]
    new = generate_safe(model, asked) if todo else []  # type: ignore[arg-type]
    if cache is not None and new:
        cache.put_many((keys[i], g) for i, g in zip(todo, new))  # type: ignore[misc]
    for i, g in zip(todo, new):
        gens[i] = g
    cached = [k is not None and k in hits for k in keys]
    return gens, cached, len(todo)


def _decoded(reqs: list[Request], pool: ThreadPoolExecutor | None) -> list[Request | Generation]:
    """The requests with their images' pixels decoded (in the pool's threads when given); a failed
    Generation in place of a request whose image cannot be decoded."""

    def decode(r: Request) -> Request | Generation:
        if all(im.pixels is not None for im in r.images):
            return r
        try:
            return replace(r, images=tuple(with_pixels(im) for im in r.images))
        except Exception as e:
            return Generation(text="", error=describe("image", e))

    return list(pool.map(decode, reqs) if pool is not None else map(decode, reqs))


# --- record ----------------------------------------------------------------------------------

def run_config(p: PreparedTask, cfg: RunConfig, model: Model) -> dict[str, Any]:
    """The record's ``configs`` entry of a task: what it was run with (`scoring.task_config`)."""
    settings = generation_settings(p.task.generation_settings(), cfg.gen_kwargs)
    return task_config(p.task, task_splits(p.task, cfg), settings, data_dir=str(p.data_dir), limit=cfg.limit,
                       prompt_style=cfg.prompt_style or model.prompt_style, coord_space=model.coord_space.value)


def versions() -> dict[str, str]:
    out = {"molmo_eval": __version__, "python": platform.python_version()}
    for mod in ("numpy", "scipy", "torch", "transformers", "PIL"):
        m = sys.modules.get(mod)
        if m is not None and hasattr(m, "__version__"):
            out[mod] = str(m.__version__)
    return out


def default_output_path(cfg: RunConfig) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}_{cfg.model}"


def write_run(run_dir: Path, cfg: RunConfig, record: RunRecord, log: SampleLog | None) -> RunRecord:
    """The run folder as a unit (`molmo_eval.run.rundir`): the staged samples.jsonl and scores.json
    of ``log`` (None without --log-samples), the report and the record, with its files' digests."""
    from molmo_eval.run.summary import markdown_report

    staged = [] if log is None else log.finish()
    return rundir.write_run(run_dir, record, None, markdown_report(record), staged=staged)

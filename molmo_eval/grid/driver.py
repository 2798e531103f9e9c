"""Running an ablation grid: its plan as one graph of jobs on an executor, into a grid record.

    GridSpec (`spec`) -> plan (`plan`: the distinct stage trainings and evaluations)
      -> benchmark-format examples first (stage keys depend on their content), then every stage and
         evaluation not in the cache yet as one graph of jobs (`jobs`) on an executor (`executors`:
         local, process pool or Ray)
      -> OUT/grid.json (`record`), rewritten as cells finish

Caching: finished checkpoints live in ``CACHE/stages/<key>/checkpoint`` and finished evaluations in
``OUT/runs/<key>/`` (normal run directories; cells whose chains end in the same checkpoint share
one); a job whose output exists is skipped, so a re-run of a finished grid does nothing and an
interrupted grid resumes (a stage interrupted mid-way resumes from its last saved step). Re-scoring
after a change of the scoring code is cheap because model outputs come from the response cache
(``CACHE/responses``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molmo_eval.core.types import RunRecord
from molmo_eval.grid.executors import Job, run_graph
from molmo_eval.grid.jobs import (
    BENCH_INDEX,
    bench_contents,
    bench_dir,
    build_bench,
    checkpoint_dir,
    evaluate_cell,
    train_stage,
)
from molmo_eval.grid.plan import BenchJob, Plan, StageJob, describe_plan, make_plan
from molmo_eval.grid.record import cell_doc, save_grid
from molmo_eval.grid.spec import GridSpec
from molmo_eval.run.records import RESULTS, read_record

EVAL_COST = 40.0  # an evaluation's rough cost in training steps (ordering only)


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
    quiet: bool | None = None,
) -> GridRun:
    """Run (or resume) every cell of ``spec`` into ``out``; writes ``out/grid.json`` as cells finish.

    First the benchmark-format examples are built (stage keys depend on their content), then the
    stages and evaluations that are not in the cache yet run as one graph of jobs."""
    out = Path(out)
    cache = Path(cache) if cache is not None else out / "cache"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    quiet = log is None if quiet is None else quiet  # no log: the jobs print nothing either
    if spec.data_root is None:
        from molmo_eval.data.embedded import default_data_root

        say("evaluation data: the embedded mini world")
        default_data_root()  # generate the embedded world once, before any worker races for it
    first = make_plan(spec)
    missing = [k for k in first.bench if not (bench_dir(cache, k) / BENCH_INDEX).is_file()]
    if missing:
        say(f"building benchmark-format training examples ({len(missing)} setting(s))")
        run_graph(
            [
                Job(k, build_bench, (first.bench[k], str(cache), quiet), label=_bench_label(first.bench[k]))
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
        jobs.append(
            Job(key, train_stage, (s, str(cache), quiet), deps, cost=float(s.steps), label=_stage_label(s))
        )
    for e in plan.evals.values():
        if e.key not in done_evals:
            jobs.append(
                Job(
                    e.key,
                    evaluate_cell,
                    (e, str(cache), str(out), quiet),
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
    return f"train stage {s.stage} ({s.cells}, {s.steps} steps)"


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

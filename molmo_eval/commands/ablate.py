"""``molmo-eval ablate``: train and evaluate a grid of reference models, then print its table.

    molmo-eval ablate --grid stages=1,1+2,1+2+3 --grid data=0.25,0.5,1.0 --grid pointing=on,off \\
        --tasks vqav2,textvqa,gqa,pope,mmbench,refcoco,pointqa --preset small --out runs/grid-small \\
        --executor pool

Cells share trained stage prefixes and every finished stage and evaluation is cached under the
grid folder, so running the same command again resumes an interrupted grid and re-running a finished
one does nothing. `molmo_eval.grid` plans and runs; `molmo_eval.grid.executors` runs the jobs.
See docs/reports.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate",
        help="train and evaluate a grid of reference models (stages x data x pointing)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="AXIS=V1,V2",
        help="an axis and its values; repeatable. Axes: stages (1, 1+2, 1+2+3), data (fractions "
        "0.25 / 25%% of the schedule, or image counts 5600img), pointing (off, on, only), captions "
        "(clean, noisy = noisy×10: stage 1 on web-style captions of 10x the images), seed",
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="GRID.toml",
        help="settings and a [grid] table of axes from a TOML file; flags win",
    )
    p.add_argument("--tasks", metavar="T1,T2", help="tasks every cell is evaluated on")
    p.add_argument(
        "--preset",
        help="model preset: tiny, small (default) or default. tiny is also a grid preset: with no "
        "--grid/--tasks it runs stages x pointing off/on/only x clean/noisy captions on tiny data "
        "(about 2 min)",
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="grid folder (grid.json, runs/, cache/)"
    )
    p.add_argument(
        "--executor",
        choices=("local", "pool", "ray"),
        default="local",
        help="local: one job at a time; pool: a process per core; ray: a Ray cluster",
    )
    p.add_argument("--workers", type=int, metavar="N", help="pool size (default: cores / threads)")
    p.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (default: start a local one)")
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads per job (default 1; fixed so that numbers do not depend on the executor)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="evaluation samples per split (default: all)")
    p.add_argument("--batch-size", type=int, metavar="N", help="evaluation batch size (default 16)")
    p.add_argument("--bootstrap", type=int, metavar="N", help="bootstrap resamples per metric (default 1000)")
    p.add_argument("--data-root", metavar="DIR", help="evaluation data (default: the embedded mini world)")
    p.add_argument(
        "--bench-data",
        choices=("on", "off"),
        help="benchmark-format training examples in stages 2 and 3, as `molmo-eval train` (default on)",
    )
    p.add_argument("--bench-size", metavar="SIZE", help="world size of those examples (default small)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="checkpoints and model outputs (default OUT/cache); share it between grids",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan (cells, trainings, sharing) and stop"
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines and no training bars")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from molmo_eval.core.errors import ConfigError
    from molmo_eval.grid.driver import run_grid
    from molmo_eval.grid.spec import load_spec

    overrides = {
        "tasks": args.tasks,
        "preset": args.preset,
        "threads": args.threads,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "bootstrap": args.bootstrap,
        "data_root": args.data_root,
        "bench": None if args.bench_data is None else args.bench_data == "on",
        "bench_size": args.bench_size,
    }
    spec = load_spec(args.config, args.grid, overrides)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: expected a positive number")
    if args.dry_run:
        _dry_run(spec, args.cache_dir or args.out / "cache")
        return 0
    from molmo_eval.grid.executors import make_executor

    executor = make_executor(
        args.executor, workers=args.workers, ray_address=args.ray_address, cpus_per_job=spec.threads
    )
    try:
        state = run_grid(
            spec,
            args.out,
            executor,
            cache=args.cache_dir,
            log=None if args.quiet else eprint,
            quiet=args.quiet,
        )
    finally:
        executor.close()
    eprint(
        f"grid finished in {state.seconds:.1f} s: {state.trained} stage(s) trained, {state.reused} reused, "
        f"{state.evaluated} evaluation(s) run, {state.eval_cached} cached -> {args.out / 'grid.json'}"
    )
    from molmo_eval.report.build import build_table
    from molmo_eval.report.inputs import load_inputs
    from molmo_eval.report.terminal import render_terminal

    table = build_table(load_inputs([args.out]), layout="ablation")
    render_terminal(table, None, "Ablation")
    return 0


def _dry_run(spec: Any, cache: Path) -> None:
    """The plan; stages whose sharing depends on benchmark examples not built yet count as distinct."""
    from molmo_eval.grid.jobs import bench_contents
    from molmo_eval.grid.plan import describe_plan, make_plan

    first = make_plan(spec)
    contents = bench_contents(cache, list(first.bench))
    print(describe_plan(make_plan(spec, contents)))
    if len(contents) < len(first.bench):
        print(
            "(benchmark-format examples not built yet: stages that train on them are counted once per "
            "pointing setting; they are shared when their content turns out identical)"
        )


def eprint(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)

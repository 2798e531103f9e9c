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

from molmo_eval.core.errors import ConfigError, MissingDependency


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
    p.add_argument("--pool", type=int, default=None, metavar="N",
                   help="world scenes per training stream, cycled with new questions on each pass, so the frozen "
                        "encoder's features are computed once per scene (default by preset: 4000 default, "
                        "2000 small, 0 tiny = every image new)")
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
    from molmo_eval.training.bench_examples import benchmark_groups

    stages = _stages(args.stages)
    if args.preset not in PRESETS:
        raise ConfigError(f"--preset {args.preset!r}: expected one of {', '.join(PRESETS)}")
    if args.pool is not None and args.pool < 0:
        raise ConfigError(f"--pool {args.pool}: expected 0 (always new scenes) or a positive number of scenes")
    if not 0 < args.data_fraction <= 10:
        raise ConfigError(f"--data-fraction {args.data_fraction}: expected a number in (0, 10]")
    pointing = args.pointing == "on"
    bench = args.bench_data == "on" and any(s in stages for s in (2, 3))
    cfg = rt.TrainConfig(
        model=preset(args.preset, pointing_head=args.pointing_head),
        stages=rt.stage_plan(args.preset, pointing=pointing, fraction=args.data_fraction, stages=stages,
                             bench=bench, vision_pretrain=not args.no_vision_pretrain),
        seed=args.seed, pointing=pointing, threads=args.threads, heldout=args.heldout,
        pool=rt.POOL[args.preset] if args.pool is None else args.pool,
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

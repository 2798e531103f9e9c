"""`molmo-eval [run] --tasks ...`: evaluate a model (the default command).

Flags follow lmms-eval's (``--model``, ``--model-args``, ``--tasks``, ``--batch-size``, ``--limit``,
``--output-path``, ``--log-samples``, ``--gen-kwargs``, ``--verbosity``; underscore spellings are accepted
too; ``--tasks list`` lists the tasks). ``--config FILE.toml`` supplies the same settings from a file;
flags given on the command line win.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError

_FLAGS: dict[str, str] = {}  # dest -> flag, for messages


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    def add(flag: str, *aliases: str, **kw: Any) -> None:
        action = p.add_argument(flag, *aliases, default=None, **kw)
        _FLAGS[action.dest] = flag

    add("--tasks", metavar="T1,T2", help="comma-separated task names; `list` lists them (as `molmo-eval tasks`)")
    add("--model", metavar="NAME", help="registered model (see `molmo-eval models`; default: reference)")
    add("--model-args", "--model_args", metavar="K=V,...", help="model arguments, e.g. checkpoint=DIR")
    add("--batch-size", "--batch_size", type=int, metavar="N", help="requests per model call (default 8)")
    add("--limit", metavar="N|F", help="evaluate only the first N samples of each split, or a fraction "
        "F < 1 of them (0.1); samples scored together (MMBench's circular rotations) count as one")
    add("--seed", type=int, metavar="N", help="seed of the bootstrap CIs (default 0)")
    add("--output-path", "--output_path", type=Path, metavar="DIR",
        help="run directory for results.json, samples.jsonl, report.md (default: runs/<time>_<model>)")
    p.add_argument("--overwrite", dest="overwrite", action="store_const", const=True, default=None,
                   help="replace a finished run of a different evaluation in --output-path (the same "
                        "command run again replaces its own run without it)")
    p.add_argument("--log-samples", "--log_samples", dest="log_samples", action="store_const", const=True,
                   default=None, help="write samples.jsonl (the default)")
    p.add_argument("--no-log-samples", dest="log_samples", action="store_const", const=False,
                   help="do not write samples.jsonl")
    add("--max-failures", metavar="N|P%",
        help="failed samples to accept, as a count or a percentage of all samples: within it the run is "
             "ok (exit 0), beyond it the run stops (exit 1). Default: none accepted, but the run goes on "
             "and ends with status partial (exit 1)")
    add("--device", metavar="DEV", help="device passed to the model, e.g. cpu or cuda:0")
    p.add_argument("--no-cache", dest="use_cache", action="store_const", const=False, default=None,
                   help="do not read or write the response cache")
    add("--cache-dir", type=Path, metavar="DIR",
        help="response cache folder (default: $MOLMO_EVAL_CACHE/responses or ~/.cache/molmo-eval/responses)")
    add("--data-root", action="append", metavar="DIR|TASK=DIR",
        help="benchmark data root (default: the embedded mini world); TASK=DIR sets one task's folder")
    add("--split", action="append", metavar="S|TASK=S",
        help="split(s) to evaluate, '+'-joined, for every task or per task (default: each task's own)")
    add("--variant", action="append", metavar="V|TASK=V", help="metric variant, e.g. gqa=llava")
    add("--prompt-style", metavar="STYLE", help="prompt style (default: the model's own, e.g. molmo)")
    add("--gen-kwargs", "--gen_kwargs", metavar="K=V,...",
        help="override every task's generation settings: max_new_tokens, temperature, do_sample, until "
             "(recorded in the run's config; part of the cache key)")
    add("--verbosity", type=str.upper, choices=VERBOSITY, metavar="LEVEL",
        help="DEBUG, INFO (default: progress and notes), WARNING (no progress), ERROR or CRITICAL")
    add("--bootstrap", type=int, metavar="N", help="bootstrap resamples per metric (default 1000; 0: no CIs)")
    add("--workers", type=int, metavar="N", help="image-loading threads (default 4)")
    add("--config", type=Path, metavar="FILE.toml", help="read settings from a TOML file")
    p.add_argument("--json", action="store_true", help="print the run record as JSON instead of a table")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="evaluate a model on tasks (the default command)",
                       description="Evaluate a model on benchmark tasks.")
    add_run_arguments(p)
    p.set_defaults(func=handle)


def config_from_args(args: argparse.Namespace) -> Any:
    from molmo_eval.core.config import build, check_setting, load_toml, parse_kv, parse_scoped

    settings: dict[str, Any] = load_toml(args.config) if args.config else {}
    unknown_file = sorted(set(settings) - _TOML_KEYS)
    problems = [f"--config {args.config}: unknown key(s) {', '.join(unknown_file)} "
                f"(expected some of {', '.join(sorted(_TOML_KEYS))})"] if unknown_file else []
    for key, value in settings.items():
        why = check_setting(key, value) if key != "tasks" else (
            "" if isinstance(value, str) or (isinstance(value, list) and all(isinstance(t, str) for t in value))
            else f"expected a list of task names, got {type(value).__name__}")
        if why:
            problems.append(f"--config {args.config}: key {key!r}: {why}")
    if problems:
        raise ConfigError(problems)
    for key in ("model", "batch_size", "limit", "seed", "output_path", "log_samples", "max_failures", "gen_kwargs",
                "device", "use_cache", "cache_dir", "prompt_style", "bootstrap", "workers", "overwrite"):
        v = getattr(args, key)
        if v is not None:
            settings[key] = v
    if args.debug:
        settings["debug"] = True
    if args.model_args is not None:
        settings["model_args"] = parse_kv(args.model_args, "--model-args")
    if args.tasks is not None:
        settings["tasks"] = args.tasks
    if args.split:
        settings["splits"] = parse_scoped(args.split, "--split")
    if args.variant:
        settings["variants"] = parse_scoped(args.variant, "--variant")
    if args.data_root:
        scoped = parse_scoped(args.data_root, "--data-root")
        settings["data_dirs"] = {k: v for k, v in scoped.items() if k != "*"}
        if "*" in scoped:
            settings["data_root"] = scoped["*"]
    tasks = settings.pop("tasks", None)
    if not tasks:
        raise ConfigError("--tasks: give the tasks to evaluate, e.g. --tasks refcoco,pointqa "
                          "(`molmo-eval tasks` lists them)")
    return build(tasks, **settings)


_TOML_KEYS = {"tasks", "model", "model_args", "batch_size", "limit", "seed", "output_path", "log_samples",
              "max_failures", "device", "use_cache", "cache_dir", "data_root", "data_dirs", "splits", "variants",
              "prompt_style", "bootstrap", "workers", "overwrite", "gen_kwargs"}
VERBOSITY = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def set_verbosity(level: str | None) -> bool:
    """lmms-eval's ``--verbosity``: the level of molmo-eval's log messages on stderr; True when progress
    lines are wanted (INFO and DEBUG)."""
    import logging

    if level is None:  # Python's defaults: warnings on stderr, and progress
        return True
    logger = logging.getLogger("molmo_eval")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[molmo-eval] %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    return logging.getLevelName(level) <= logging.INFO


def handle(args: argparse.Namespace) -> int:
    from molmo_eval.run import runner
    from molmo_eval.run.summary import print_table

    if args.tasks == "list":  # lmms-eval's way to list tasks
        from molmo_eval.commands.listing import list_tasks

        return list_tasks(args)
    progress = set_verbosity(args.verbosity)
    cfg = config_from_args(args)
    outcome = runner.run(cfg, show_progress=progress)
    if not outcome.is_main:
        return outcome.exit_code
    if args.json:
        import json

        print(json.dumps(outcome.record.to_json(), indent=2))
    else:
        print_table(outcome.record)
        if outcome.run_dir is not None:
            print(f"results: {outcome.run_dir / 'results.json'}   report: {outcome.run_dir / 'report.md'}",
                  file=sys.stderr)
    note = status_line(outcome.record)
    if note:
        print(note, file=sys.stderr)
    return outcome.exit_code


def status_line(record: Any) -> str:
    """One line for a run that did not end ``ok``: what failed, and what to do about it."""
    if record.status == "partial":
        return (f"molmo-eval: {record.n_failed} sample(s) failed (status partial, exit 1); run the same "
                "command again to retry them (finished samples come from the cache), or accept a known-"
                "flaky backend with --max-failures N or P%")
    if record.status == "failed":
        return f"molmo-eval: the run failed ({'; '.join(record.errors) or 'see above'}); exit 1"
    return ""

"""The `molmo-eval` command line: a thin shell over `molmo_eval.run.runner` and the sub-command modules.

``molmo-eval [run flags]`` evaluates (lmms-eval-style flags); ``molmo-eval COMMAND ...`` runs a
sub-command (tasks, models, score, data, gate, ...). Errors meant for users print as one line and
exit 2 (bad configuration or input) without a traceback unless ``--debug``; a run exits 1 when a
task failed or ``--max-failures`` was reached. Heavy modules are imported only by the handlers
that need them, so ``--help`` and ``tasks`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import MissingDependency, MolmoEvalError
from molmo_eval.core.version import __version__

# sub-command name -> module defining add_parser(subparsers); modules that are not installed are skipped
COMMANDS = {
    "run": "molmo_eval.commands.run",
    "tasks": "molmo_eval.commands.listing",
    "models": "molmo_eval.commands.listing",
    "score": "molmo_eval.commands.score",
    "data": "molmo_eval.commands.data",
    "train": "molmo_eval.commands.train",
    "ablate": "molmo_eval.commands.ablate",
    "report": "molmo_eval.commands.report",
    "gate": "molmo_eval.commands.gate",
    "serve": "molmo_eval.commands.serve",
    "export": "molmo_eval.commands.export",
}


def _available(only: str | None = None) -> dict[str, Any]:
    mods: dict[str, Any] = {}
    for name, modname in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            mods[name] = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise
    return mods


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command, or (``only``) of the evaluation flags and that one command:
    each command module is imported to add its parser, which a command line naming one does not need."""
    from molmo_eval.commands import run as run_cmd

    mods = _available(only)
    others = [n for n in COMMANDS if n != "run" and (only is not None or n in mods)]
    parser = argparse.ArgumentParser(
        prog="molmo-eval", allow_abbrev=False,
        description="Evaluate vision-language models on VQAv2, GQA, TextVQA, RefCOCO(+/g), PointQA, MMBench "
                    "and POPE with official-parity scorers. Without a COMMAND, evaluates (flags below).",
        epilog="commands: " + ", ".join(others) + "  (molmo-eval COMMAND --help for each)",
    )
    parser.add_argument("--version", action="version", version=f"molmo-eval {__version__}")
    run_cmd.add_run_arguments(parser)
    parser.set_defaults(func=run_cmd.handle)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    done: set[int] = set()
    for name in others + ["run"]:
        mod = mods.get(name)
        if mod is None:
            continue
        if id(mod) in done:
            continue
        done.add(id(mod))
        mod.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``molmo-eval`` command. Without ``argv`` (the console entry, ``python -m molmo_eval``) a
    command that left its large data to the process's end (`molmo_eval.core.heap.keep_until_exit`)
    ends the process here, output flushed and ``atexit`` handlers run, without freeing that data."""
    if argv is not None:
        return _main(list(argv))
    from molmo_eval.core import heap

    heap.arm_quick_exit()
    code = _main(sys.argv[1:])
    if heap.quick_exit_wanted():
        _quick_exit(code)
    return code


def _quick_exit(code: int) -> None:
    import atexit
    import os

    atexit._run_exitfuncs()  # logging's flush and whatever else registered itself
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(code)


def _main(args_list: list[str]) -> int:
    debug = "--debug" in args_list
    try:
        parser = build_parser(_command_of(args_list))
        if not args_list:
            parser.print_help(sys.stderr)
            return 2
        args = parser.parse_args(args_list)
        return int(args.func(args) or 0)
    except MolmoEvalError as e:
        if debug:
            raise
        print(f"molmo-eval: error: {e}", file=sys.stderr)
        return e.exit_code
    except ModuleNotFoundError as e:  # an uninstalled dependency: the pip line, never a traceback
        if debug or (e.name or "").split(".")[0] == "molmo_eval":
            raise
        print(f"molmo-eval: error: {MissingDependency.of(e, 'this command')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nmolmo-eval: interrupted; finished batches are cached, so the same command resumes",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _command_of(args: Sequence[str]) -> str | None:
    """The sub-command a command line names with its first word (``run`` when it starts with an
    evaluation flag); None (every parser) for help, version, or a first word that names none."""
    if not args or args[0] in ("-h", "--help", "--version"):
        return None
    if args[0] in COMMANDS:
        return args[0]
    if args[0].startswith("-") and not any(a in COMMANDS for a in args):
        return "run"
    return None


def path_arg(text: str) -> Path:
    return Path(text).expanduser()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""`molmo-eval export`: write molmo-eval tasks for other harnesses.

    molmo-eval export lmms-tasks --out DIR [--data-root DIR|TASK=DIR] [--tasks T1,T2] [--limit N]
                                 [--split S|TASK=S] [--variant V|TASK=V] [--model NAME]
                                 [--prompt-style STYLE] [--coord-space SPACE]

then ``lmms-eval --model molmo_reference --tasks molmo_all --include_path DIR`` (see docs/lmms-eval.md).
Samples are chosen exactly as ``molmo-eval --tasks ...`` with the same flags chooses them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write tasks for other harnesses (lmms-eval)")
    kinds = p.add_subparsers(dest="export_kind", metavar="KIND", required=True)
    e = kinds.add_parser(
        "lmms-tasks", help="lmms-eval task definitions over local data, scored by molmo-eval",
        description="Write lmms-eval tasks (YAML + JSON lines + utils.py) whose scoring calls molmo-eval's "
                    "scorers, for `lmms-eval --include_path DIR`.")
    e.add_argument("--out", type=Path, required=True,
                   help="folder to write (new, empty, or an earlier export)")
    e.add_argument("--tasks", default=None, metavar="T1,T2",
                   help="tasks to export (default: every registered task)")
    e.add_argument("--data-root", action="append", metavar="DIR|TASK=DIR",
                   help="benchmark data root (default: the embedded mini world); TASK=DIR sets one task's "
                        "folder")
    e.add_argument("--limit", default=None, metavar="N|F",
                   help="only the first N samples (or a fraction F < 1) of each split, as a run chooses them")
    e.add_argument("--split", action="append", metavar="S|TASK=S",
                   help="split(s), '+'-joined (default: each task's own)")
    e.add_argument("--variant", action="append", metavar="V|TASK=V", help="metric variant, e.g. gqa=llava")
    e.add_argument("--model", default="reference", metavar="NAME",
                   help="molmo-eval model the prompts are rendered for (default: reference): its prompt "
                        "style and coordinate space")
    e.add_argument("--prompt-style", default=None, metavar="STYLE", help="override the model's prompt style")
    e.add_argument("--coord-space", default=None, metavar="SPACE",
                   help="override the model's coordinate space (pixels, normalized, percent, thousand, bins)")
    e.add_argument("--debug", action="store_true", help="show tracebacks")
    e.set_defaults(func=export_lmms)


def export_lmms(args: argparse.Namespace) -> int:
    from molmo_eval.core import registry
    from molmo_eval.core.config import build, parse_scoped
    from molmo_eval.interop.lmms_tasks import export_lmms_tasks, model_defaults, parse_space, summary_lines

    settings: dict = {"limit": args.limit}
    if args.split:
        settings["splits"] = parse_scoped(args.split, "--split")
    if args.variant:
        settings["variants"] = parse_scoped(args.variant, "--variant")
    if args.data_root:
        scoped = parse_scoped(args.data_root, "--data-root")
        settings["data_dirs"] = {k: v for k, v in scoped.items() if k != "*"}
        settings["data_root"] = scoped.get("*")
    cfg = build(args.tasks or registry.task_names(), **settings)
    if args.prompt_style and args.coord_space:  # nothing to look up: the model need not be installed
        style, space = args.prompt_style, parse_space(args.coord_space)
    else:
        style, space = model_defaults(args.model)
        style = args.prompt_style or style
        space = parse_space(args.coord_space) if args.coord_space else space
    exported = export_lmms_tasks(args.out, cfg, prompt_style=style, coord_space=space)
    for line in summary_lines(exported):
        print(line)
    print(f"wrote {len(exported)} lmms-eval tasks to {args.out} (prompt style {style!r}, points in "
          f"{space.value}); run:\n"
          f"  lmms-eval --model molmo_reference --tasks molmo_all --include_path {args.out}")
    return 0

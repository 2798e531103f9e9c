"""``molmo-eval gate``: fail a CI build when a run regressed against a committed baseline.

The CLI shell over `molmo_eval.gate.baseline` (read both sides, write the baseline),
`molmo_eval.gate.verdicts` and `molmo_eval.gate.output` (table, JUnit XML, Markdown). Exit 0 pass,
1 regression, 2 cannot compare (unreadable or failed runs, different samples or data, missing tasks
or metrics, bad flags). See docs/gate.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EPILOG = """\
tolerances are allowed drops in the metric's units (fractions; 0.01 or 1pt = one percentage point):
  --tolerance accuracy=1pt --tolerance pope:f1=0.02 --tolerance '*=0.005'
exit codes: 0 pass, 1 regression, 2 cannot compare (takes precedence over 1)
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "gate", help="compare a run with a baseline; exit 1 on a significant regression",
        description="Compare every task x metric of a baseline with the current run, using paired\n"
                    "per-sample significance tests (exact McNemar for 0/1 scores, paired bootstrap\n"
                    "otherwise). Fails closed: anything that cannot be compared exits 2. See docs/gate.md.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, metavar="RUN_OR_RECORD",
                   help="run directory, its results.json, or a baseline file (written by --update-baseline)")
    p.add_argument("--current", required=True, metavar="RUN",
                   help="run directory (results.json + samples.jsonl) or its results.json")
    p.add_argument("--tasks", nargs="+", metavar="TASK", help="gate only these tasks (comma or space separated)")
    p.add_argument("--tolerance", action="append", default=[], metavar="[TASK:]METRIC=DROP",
                   help="allowed drop; repeatable; '*=DROP' sets the default (0)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--policy", choices=("both", "tolerance", "significance"), default="both",
                   help="regression = beyond tolerance AND significant (both, default), "
                        "beyond tolerance only, or significant only")
    p.add_argument("--correction", choices=("holm", "none"), default="holm",
                   help="multiple-comparison correction of p-values across all tests (default holm)")
    p.add_argument("--max-failed", type=int, default=0, metavar="N",
                   help="failed samples (model errors) a task may have in either run (default 0)")
    p.add_argument("--n-boot", type=int, default=1000, metavar="B", help="paired bootstrap replicates (1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML (one test case per task x metric)")
    p.add_argument("--summary", type=Path, metavar="FILE",
                   help="write a Markdown summary (PR comment, $GITHUB_STEP_SUMMARY)")
    p.add_argument("--update-baseline", action="store_true",
                   help="write the current run as the new baseline file at --baseline (after showing "
                        "the comparison with the old one, if any) and exit 0")
    p.add_argument("--quiet", action="store_true", help="print only the verdict line")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=handle)


def config_from_args(args: argparse.Namespace) -> Any:
    from molmo_eval.core.errors import ConfigError
    from molmo_eval.gate.verdicts import GateConfig, Policy, Tolerances

    problems = []
    try:
        tolerances = Tolerances.parse(args.tolerance)
    except ConfigError as e:
        problems += e.problems
        tolerances = Tolerances()
    if not 0.0 < args.alpha < 1.0:
        problems.append(f"--alpha {args.alpha}: expected a number between 0 and 1")
    if args.n_boot < 100:
        problems.append(f"--n-boot {args.n_boot}: expected at least 100 replicates")
    if args.max_failed < 0:
        problems.append(f"--max-failed {args.max_failed}: expected a count >= 0")
    tasks = None
    if args.tasks:
        tasks = tuple(t.strip() for text in args.tasks for t in text.split(",") if t.strip())
        if not tasks:
            problems.append("--tasks: expected at least one task name")
    if problems:
        raise ConfigError(problems)
    return GateConfig(Policy(args.policy), args.alpha, tolerances, tasks, args.correction, args.seed,
                      args.n_boot, args.max_failed)


def handle(args: argparse.Namespace) -> int:
    from molmo_eval.core.errors import MolmoEvalError
    from molmo_eval.gate.baseline import load
    from molmo_eval.gate.verdicts import cannot_compare, compare

    config = config_from_args(args)
    base_label, cur_label = str(args.baseline), str(args.current)
    try:
        current = load(args.current)
    except MolmoEvalError as e:
        report = cannot_compare(base_label, cur_label, config, f"current run: {e}")
        return _finish(report, args)
    if args.update_baseline:
        return _update(args, config, current)
    try:
        baseline = load(args.baseline)
    except MolmoEvalError as e:
        return _finish(cannot_compare(base_label, cur_label, config, f"baseline: {e}"), args)
    return _finish(compare(baseline, current, config), args)


def _finish(report: Any, args: argparse.Namespace, write: bool = True) -> int:
    from molmo_eval.gate.output import headline, junit_xml, markdown, print_report
    from molmo_eval.run.records import atomic_write

    if args.quiet:
        print(f"molmo-eval gate: {headline(report)} (exit {report.exit_code})")
    else:
        print_report(report, sys.stdout)
    if write and args.junit is not None:
        atomic_write(args.junit, junit_xml(report))
    if write and args.summary is not None:
        atomic_write(args.summary, markdown(report))
    return report.exit_code


def _update(args: argparse.Namespace, config: Any, current: Any) -> int:
    """Accept the current run as the baseline. A failed run never becomes one (exit 2)."""
    from molmo_eval.core.errors import MolmoEvalError
    from molmo_eval.gate.baseline import check_writable, load, write_baseline
    from molmo_eval.gate.verdicts import cannot_compare, compare

    check_writable(args.baseline)  # ConfigError (exit 2) before anything is shown
    why = _unfit_baseline(current, config)
    if why:
        return _finish(cannot_compare(str(args.baseline), str(args.current), config,
                                      f"not written as a baseline: {why}"), args)
    path = Path(args.baseline)
    if path.exists():
        try:
            old = load(path)
        except MolmoEvalError as e:
            print(f"molmo-eval gate: the old baseline is unreadable ({e}); replacing it")
        else:
            _finish(compare(old, current, config), args, write=False)
    written = write_baseline(path, current)
    print(f"molmo-eval gate: wrote baseline {written} from {args.current} "
          f"(tasks: {', '.join(current.record.tasks)})")
    return 0


def _unfit_baseline(current: Any, config: Any) -> str:
    rec = current.record
    if rec.status != "ok":
        return f"the run {rec.run_id} has status {rec.status!r}"
    bad = [f"{t} ({tr.n_failed})" for t, tr in rec.tasks.items() if tr.n_failed > config.max_failed]
    if bad:
        return f"failed samples beyond --max-failed {config.max_failed} in {', '.join(bad)}"
    if not rec.tasks:
        return "the run has no tasks"
    missing = [t for t in rec.tasks if current.rows is None or t not in current.rows]
    if missing:
        return f"no per-sample scores for {', '.join(missing)} (run with --log-samples)"
    return ""

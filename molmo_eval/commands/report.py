"""``molmo-eval report``: paper tables from run records and grid records (never runs a model).

    molmo-eval report runs/a runs/b --baseline a --format latex --out table.tex
    molmo-eval report runs/grid --layout ablation --baseline "stages=1+2+3 data=1 pointing=on" --ci
    molmo-eval report Ours=runs/a Theirs=runs/b --format html --samples disagree --n 6 --out cmp.html
    molmo-eval report --regenerate reports          # every committed file under reports/

The work is in `molmo_eval.report`: the table (`build`), its renderers (`markdown`, `latex`,
`csv_table`, `terminal`, `html_page`), `plots`, the sample `viewer`, and `publish`, which puts them
together. See docs/reports.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

SUFFIX_FORMATS = {
    ".md": "md",
    ".markdown": "md",
    ".tex": "latex",
    ".html": "html",
    ".htm": "html",
    ".csv": "csv",
}

EPILOG = """\
inputs are run directories (results.json + samples.jsonl), their results.json, or grid folders
written by `molmo-eval ablate`; LABEL=PATH names a row. --baseline takes a row label, a run folder
name, a run id or grid coordinates ("stages=1+2+3 data=1 pointing=on").
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="paper tables (md, LaTeX, HTML, CSV, terminal) from runs and grids",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="*", metavar="RUN_OR_GRID", help="run directories or grid folders ([LABEL=]PATH)"
    )
    p.add_argument(
        "--format",
        choices=("md", "latex", "html", "csv", "terminal"),
        help="output format (default: from --out's suffix, else the terminal)",
    )
    p.add_argument("--out", type=Path, metavar="FILE", help="write here instead of printing")
    p.add_argument(
        "--layout",
        choices=("models", "ablation"),
        help="rows are runs (models) or grid cells with axis columns (ablation; default for a grid)",
    )
    p.add_argument(
        "--baseline", metavar="NAME", help="row that deltas and paired significance tests compare to"
    )
    p.add_argument(
        "--metrics",
        default="primary",
        metavar="primary|all|TASK:METRIC,...",
        help="columns: each task's primary metric (default), all metrics, or a list",
    )
    p.add_argument("--ci", action="store_true", help="show 95%% bootstrap confidence intervals")
    p.add_argument("--digits", type=int, default=1, help="decimals of percentages (default 1)")
    p.add_argument(
        "--no-average", dest="average", action="store_false", default=None, help="leave out the Avg. column"
    )
    p.add_argument("--title", default=None, help="document title (md, html)")
    p.add_argument(
        "--samples",
        choices=("worst", "best", "random", "disagree"),
        help="add chosen samples: images with ground truth and predictions in HTML, a list in md",
    )
    p.add_argument("--n", type=int, default=4, metavar="N", help="samples per task (default 4)")
    p.add_argument(
        "--view", metavar="NAME", help="row whose samples are shown (default: the first non-baseline)"
    )
    p.add_argument("--plots", type=Path, metavar="DIR", help="also write the plots (PNG and PDF) into DIR")
    p.add_argument("--no-plots", dest="embed_plots", action="store_false", help="HTML without plots")
    p.add_argument(
        "--no-breakdowns", dest="breakdowns", action="store_false", help="leave out breakdown tables"
    )
    p.add_argument(
        "--correction",
        choices=("holm", "none"),
        default="holm",
        help="multiple-comparison correction of the significance marks (default holm)",
    )
    p.add_argument("--n-boot", type=int, default=1000, metavar="B", help="paired bootstrap replicates (1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the paired bootstrap and random samples")
    p.add_argument(
        "--regenerate",
        nargs="?",
        const=Path("reports"),
        type=Path,
        metavar="DIR",
        help="render every report listed in DIR/reports.toml from its records (default DIR: reports)",
    )
    p.add_argument(
        "--no-paper",
        dest="paper",
        action="store_false",
        help="for a grid: leave out the paper's ablation tables (stages, pointing, caption quality) and "
        "the findings paragraph that precede the full grid",
    )
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from molmo_eval.core.errors import ConfigError
    from molmo_eval.report.build import build_table
    from molmo_eval.report.inputs import SampleStore, load_inputs
    from molmo_eval.report.markdown import markdown_document
    from molmo_eval.report.publish import regenerate, render

    if args.regenerate is not None:
        if args.inputs:
            raise ConfigError("--regenerate reads its inputs from DIR/reports.toml; give no RUN_OR_GRID")
        for path in regenerate(args.regenerate):
            print(path)
        return 0
    if not args.inputs:
        raise ConfigError("report: give at least one run directory or grid folder (or --regenerate)")
    fmt = args.format or (SUFFIX_FORMATS.get(args.out.suffix.lower(), "md") if args.out else "terminal")
    if args.digits < 0 or args.digits > 4:
        raise ConfigError(f"--digits {args.digits}: expected 0 to 4")
    if args.n < 1:
        raise ConfigError(f"--n {args.n}: expected a positive number of samples")
    inputs = load_inputs(args.inputs)
    store = SampleStore()
    table = build_table(
        inputs,
        layout=args.layout,
        metrics=args.metrics,
        baseline=args.baseline,
        ci=args.ci,
        digits=args.digits,
        seed=args.seed,
        n_boot=args.n_boot,
        correction=args.correction,
        average=args.average,
        store=store,
    )
    title = args.title or ("Ablation" if table.layout == "ablation" else "Results")
    paper = None
    if args.paper and table.layout == "ablation":
        from molmo_eval.report.paper import build_paper

        paper = build_paper(
            inputs, store=store, seed=args.seed, n_boot=args.n_boot, digits=args.digits, ci=args.ci
        )
    plot_links = _write_plots(table, args.plots, args.out) if args.plots else []
    if fmt == "terminal":
        return _terminal(table, args, store, title, paper)
    if fmt == "md":
        listing = _listing(table, args, store) if args.samples else ""
        text = markdown_document(
            table,
            title,
            breakdowns=args.breakdowns,
            plots=plot_links,
            samples=listing,
            paper=paper if paper is not None and paper.tables else None,
        )
    else:
        text = render(
            table,
            fmt,
            title=title,
            store=store,
            plots=args.embed_plots,
            samples=args.samples,
            n=args.n,
            view=args.view,
            seed=args.seed,
            breakdowns=args.breakdowns,
            paper=paper,
        )
    if args.out:
        from molmo_eval.run.records import atomic_write

        atomic_write(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _terminal(table: Any, args: argparse.Namespace, store: Any, title: str, paper: Any = None) -> int:
    from molmo_eval.report.terminal import render_terminal, render_terminal_paper

    show = paper is not None and paper.tables
    if args.out:
        import io

        buf = io.StringIO()
        if show:
            render_terminal_paper(paper, buf)
        render_terminal(table, buf, title)
        args.out.write_text(buf.getvalue(), encoding="utf-8")
        return 0
    if show:
        render_terminal_paper(paper, None)
    render_terminal(table, None, title)
    if args.samples:
        sys.stdout.write("\n" + _listing(table, args, store))
    return 0


def _listing(table: Any, args: argparse.Namespace, store: Any) -> str:
    from molmo_eval.report import viewer

    return viewer.markdown_listing(
        viewer.pick_for_table(table, store, args.samples, args.n, view=args.view, seed=args.seed)
    )


def _write_plots(table: Any, folder: Path, out: Path | None) -> list[str]:
    """Write the plots; return the PNG paths relative to the output file's folder (for links)."""
    import os

    from molmo_eval.report import plots

    prefix = out.stem if out is not None else "report"
    written = plots.save_plots(table, folder, prefix=prefix)
    base = out.parent if out is not None else Path.cwd()
    for p in written:
        print(f"wrote {p}", file=sys.stderr)
    return [Path(os.path.relpath(p, base)).as_posix() for p in written if p.suffix == ".png"]

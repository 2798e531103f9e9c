"""The top of the report room: one table rendered to a document in any format (`render`, which
composes the renderers with the plots and the sample viewer), and the committed ``reports/`` folder
regenerated from its manifest ``reports.toml`` (`regenerate`): tables, plots and an index README.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from molmo_eval.core.errors import ConfigError, DataError, MissingDependency
from molmo_eval.report import viewer
from molmo_eval.report.build import build_table
from molmo_eval.report.csv_table import render_csv, render_csv_paper
from molmo_eval.report.html_page import html_document
from molmo_eval.report.inputs import SampleStore, load_inputs
from molmo_eval.report.latex import render_latex, render_latex_paper
from molmo_eval.report.markdown import markdown_document, render_markdown
from molmo_eval.report.model import Inputs, Paper, Table
from molmo_eval.report.paper import build_paper
from molmo_eval.report.plots import figures, png_bytes, save_plots
from molmo_eval.run.records import atomic_write

FORMATS = ("md", "latex", "html", "csv", "terminal")


def render(
    table: Table,
    fmt_name: str,
    *,
    title: str = "Results",
    inputs: Inputs | None = None,
    store: SampleStore | None = None,
    plots: bool = True,
    samples: str | None = None,
    n: int = 4,
    view: str | None = None,
    seed: int = 0,
    breakdowns: bool = True,
    paper: Paper | None = None,
) -> str:
    """One document in ``fmt_name`` (md, latex, csv, html); the terminal format prints instead.
    ``paper``: a grid's ablation tables and findings, rendered before the full grid."""
    paper = paper if paper is not None and paper.tables else None
    if fmt_name == "md":
        listing = ""
        if samples:
            listing = viewer.markdown_listing(
                viewer.pick_for_table(table, store or SampleStore(), samples, n, view=view, seed=seed)
            )
        return markdown_document(table, title, breakdowns=breakdowns, samples=listing, paper=paper)
    if fmt_name == "latex":
        if paper is None:
            return render_latex(table)
        return render_latex_paper(paper) + "\n% --- Full grid ---\n" + render_latex(table)
    if fmt_name == "csv":
        return render_csv(table) + ("\n" + render_csv_paper(paper) if paper is not None else "")
    if fmt_name == "html":
        figs, no_plots = _png_figures(table) if plots else ([], "")
        cards = None
        if samples:
            picks = viewer.pick_for_table(table, store or SampleStore(), samples, n, view=view, seed=seed)
            cards = (samples, viewer.html_cards(picks))
        return html_document(
            table, title, figures=figs, no_plots=no_plots, samples=cards, breakdowns=breakdowns, paper=paper
        )
    raise ConfigError(f"--format {fmt_name!r}: expected one of {', '.join(FORMATS)}")


def _png_figures(table: Table) -> tuple[list[tuple[str, bytes]], str]:
    """The table's figures as PNG bytes for the HTML page, or why there are none."""
    try:
        return [(name, png_bytes(fig)) for name, fig in figures(table)], ""
    except MissingDependency as e:
        return [], str(e)


MANIFEST = "reports.toml"
EXTENSIONS = {"md": ".md", "latex": ".tex", "csv": ".csv", "html": ".html"}


@dataclass(frozen=True)
class ReportSpec:
    name: str
    title: str
    inputs: tuple[str, ...]
    layout: str | None = None
    baseline: str | None = None
    metrics: str = "primary"
    ci: bool = False
    formats: tuple[str, ...] = ("md", "latex", "csv", "html")
    plots: bool = True
    samples: str | None = None
    n: int = 3
    view: str | None = None
    paper: bool = True  # a grid's ablation tables and findings before the full grid


def read_manifest(root: Path) -> list[ReportSpec]:
    from molmo_eval.core.compat import tomllib

    path = root / MANIFEST
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no report manifest", path=path, expected="a [[report]] table per report") from None
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"not valid TOML ({e})", path=path) from None
    known = {f for f in ReportSpec.__dataclass_fields__}
    out, problems = [], []
    for i, r in enumerate(data.get("report", [])):
        unknown = sorted(set(r) - known)
        if unknown or "name" not in r or "inputs" not in r:
            problems.append(
                f"{path}: report {i + 1}: needs name and inputs"
                + (f"; unknown keys {', '.join(unknown)}" if unknown else "")
            )
            continue
        bad = [f for f in r.get("formats", ()) if f not in EXTENSIONS]
        if bad:
            problems.append(f"{path}: report {r['name']}: unknown format(s) {', '.join(bad)}")
            continue
        r = {
            **r,
            "inputs": tuple(r["inputs"]),
            "formats": tuple(r.get("formats", ReportSpec.formats)),
            "title": r.get("title", r["name"]),
        }
        out.append(ReportSpec(**r))
    if problems:
        raise ConfigError(problems)
    return out


def regenerate(root: Path, out: Path | None = None) -> list[Path]:
    """Render every report of ``root/reports.toml`` from the records it names (paths relative to
    ``root``) into ``out`` (default ``root``): tables, plots and an index ``README.md``."""
    out = out or root
    written: list[Path] = []
    index = [
        "# Reports",
        "",
        "<!-- Generated by `molmo-eval report --regenerate` from the records under records/; "
        "do not edit. -->",
        "",
        "Regenerate every file here from the committed records with",
        "",
        "```bash",
        "molmo-eval report --regenerate reports",
        "```",
        "",
    ]
    for spec in read_manifest(root):
        inputs = load_inputs([_resolve_input(p, root) for p in spec.inputs])
        store = SampleStore()
        table = build_table(
            inputs, layout=spec.layout, metrics=spec.metrics, baseline=spec.baseline, ci=spec.ci, store=store
        )
        paper = None
        if spec.paper and table.layout == "ablation":
            paper = build_paper(inputs, store=store, ci=spec.ci)
        paper = paper if paper is not None and paper.tables else None
        plot_files: list[str] = []
        if spec.plots:
            for p in save_plots(table, out / "plots", prefix=spec.name):
                written.append(p)
                if p.suffix == ".png":
                    plot_files.append(p.relative_to(out).as_posix())
        for f in spec.formats:
            target = out / f"{spec.name}{EXTENSIONS[f]}"
            text = (
                markdown_document(
                    table, spec.title, plots=[Path(p).as_posix() for p in plot_files], paper=paper
                )
                if f == "md"
                else render(
                    table,
                    f,
                    title=spec.title,
                    store=store,
                    plots=spec.plots,
                    samples=spec.samples,
                    n=spec.n,
                    view=spec.view,
                    paper=paper,
                )
            )
            _write(target, text)
            written.append(target)
        index += [f"## {spec.title}", ""]
        index += [f"[{f}]({spec.name}{EXTENSIONS[f]})" for f in spec.formats] + [""]
        index += [render_markdown(table)]
        index += [f"![{Path(p).stem}]({p})" for p in plot_files[:3]] + [""]
    _write(out / "README.md", "\n".join(index).rstrip("\n") + "\n")
    return written + [out / "README.md"]


def _resolve_input(text: str, root: Path) -> str:
    """A manifest input (``PATH`` or ``LABEL=PATH``, PATH relative to the reports folder)."""
    label, sep, path = text.partition("=")
    if sep and not (root / text).exists():
        return f"{label}={root / path}"
    return str(root / text)


def _write(path: Path, text: str) -> None:
    atomic_write(path, text)

"""Reports from records: tables (md, LaTeX, CSV, terminal, HTML), significance marks, the sample
viewer and the regeneration of reports/.

Fixtures are real runs of the toy task by a scripted model that answers a chosen set of samples
right, so values, deltas and McNemar p-values are known by hand:

- A: samples 0-19 right of 40 (50.0%); B: 0-29 (75.0%): 10 gains, 0 losses against A, exact
  McNemar p = 2 * 0.5**10; C: 0-15 and 20-23 (50.0%): 4 gains, 4 losses, p = 1.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import pytest
from report_helpers import correct_ids, toy_grid, toy_run

from molmo_eval.cli import main
from molmo_eval.core.errors import ConfigError, DataError
from molmo_eval.report import publish, viewer
from molmo_eval.report.build import build_table
from molmo_eval.report.csv_table import render_csv
from molmo_eval.report.inputs import SampleStore, load_inputs
from molmo_eval.report.latex import render_latex
from molmo_eval.report.markdown import render_markdown
from molmo_eval.report.significance import SAME_RUN
from molmo_eval.report.terminal import render_terminal

P_B = 2 * 0.5**10  # B against A: 10 discordant pairs, all gains
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def runs(tmp_path, toy_task, toy_root):
    d = tmp_path / "runs"
    return {
        "A": toy_run(d / "A", toy_root, range(20)),
        "B": toy_run(d / "B", toy_root, range(30)),
        "C": toy_run(d / "C", toy_root, [*range(16), 20, 21, 22, 23]),
    }


def table_of(paths, **kw):
    return build_table(load_inputs([str(p) for p in paths]), **kw)


# --- the table -----------------------------------------------------------------------------------


def test_values_best_and_deltas_against_the_baseline(runs):
    t = table_of([runs["A"], runs["B"], runs["C"]], baseline="A")
    assert [r.entry.label for r in t.rows] == ["A", "B", "C"]
    (col,) = t.columns
    assert (col.task, col.metric) == ("toy", "accuracy")
    vals = [r.values[0] for r in t.rows]
    assert [round(100 * v.mv.value, 6) for v in vals] == [50.0, 75.0, 50.0]
    assert [v.best for v in vals] == [False, True, False]
    assert vals[0].delta is None and vals[0].p is None  # the baseline itself
    assert vals[1].delta == pytest.approx(0.25) and vals[2].delta == pytest.approx(0.0)
    # Holm over the two tests: the smaller p doubles, the larger stays at its (capped) value
    assert vals[1].p == pytest.approx(2 * P_B) and vals[1].test == "mcnemar"
    assert vals[2].p == pytest.approx(1.0)
    assert (vals[1].mark, vals[2].mark) == ("**", "")
    assert t.n_tests == 2


def test_without_correction_the_p_value_is_the_exact_mcnemar_one(runs):
    t = table_of([runs["A"], runs["B"]], baseline="A", correction="none")
    assert t.rows[1].values[0].p == pytest.approx(P_B)


def test_markdown_table(runs):
    text = render_markdown(table_of([runs["A"], runs["B"], runs["C"]], baseline="A", ci=True))
    lines = text.splitlines()
    assert lines[0] == "| Model | toy |"
    assert lines[1] == "|---|---:|"
    assert lines[2].startswith("| A (baseline) | 50.0 [")
    assert re.fullmatch(r"\| B \| \*\*75\.0\*\* \[\d+\.\d–\d+\.\d\] \(\+25\.0\*\*\) \|", lines[3]), lines[3]
    assert lines[4].startswith("| C | 50.0 [") and lines[4].endswith("(+0.0) |")
    assert "Holm-adjusted over 2 comparisons" in text


def test_ci_range_is_the_recorded_interval(runs):
    from molmo_eval.run.records import read_record

    mv = read_record(runs["B"]).tasks["toy"].metrics["accuracy"]
    text = render_markdown(table_of([runs["B"]], ci=True))
    assert f"[{100 * mv.ci_low:.1f}–{100 * mv.ci_high:.1f}]" in text


def test_latex_is_a_booktabs_tabular_with_escaped_labels(runs):
    t = table_of([f"A_1&co={runs['A']}", f"B={runs['B']}"], baseline="A_1&co")
    tex = render_latex(t)
    assert "\\begin{tabular}{lr@{}l}" in tex and tex.rstrip().endswith("\\end{tabular}")
    assert tex.index("\\toprule") < tex.index("\\midrule") < tex.index("\\bottomrule")
    assert "A\\_1\\&co (baseline) & 50.0 &  \\\\" in tex
    assert "B & \\textbf{75.0} & \\,{\\scriptsize(+25.0$^{**}$)} \\\\" in tex
    body = [ln for ln in tex.splitlines() if ln.endswith("\\\\")]
    assert body[0].count(" & ") == 1 and "\\multicolumn{2}{c}" in body[0]  # one header per metric
    assert all(ln.count(" & ") == 2 for ln in body[1:])  # a label, then the number and its note (r@{}l)
    assert not any(re.search(r"(?<!\\)%", ln) for ln in tex.splitlines() if not ln.startswith("%"))


def test_csv_has_numbers_for_spreadsheets(runs):
    t = table_of([runs["A"], runs["B"]], baseline="A", correction="none")
    rows = list(csv.DictReader(io.StringIO(render_csv(t))))
    assert [r["label"] for r in rows] == ["A (baseline)", "B"]
    assert float(rows[1]["toy:accuracy (%)"]) == 75.0
    assert float(rows[1]["toy:accuracy:delta (%)"]) == 25.0
    assert float(rows[1]["toy:accuracy:p_adjusted"]) == pytest.approx(P_B, rel=1e-3)
    assert rows[1]["toy:accuracy:n"] == "40"
    assert rows[0]["toy:accuracy:delta (%)"] == ""


def test_terminal_table(runs):
    buf = io.StringIO()
    render_terminal(table_of([runs["A"], runs["B"]], baseline="A"), buf, "Results")
    out = buf.getvalue()
    assert "A (baseline)" in out and "75.0 +25.0**" in out


def test_unknown_or_ambiguous_baseline_lists_rows(runs):
    inputs = load_inputs([str(runs["A"]), str(runs["B"])])
    with pytest.raises(ConfigError, match="matches no row.*'A', 'B'"):
        build_table(inputs, baseline="Z")


def test_runs_with_different_samples_get_no_mark(tmp_path, runs, toy_root):
    from molmo_eval.run.records import SAMPLES

    cut = toy_run(tmp_path / "cut", toy_root, range(30), limit=39)  # one sample fewer than A
    t = table_of([runs["A"], cut], baseline="A")
    v = t.rows[1].values[0]
    assert v.delta == pytest.approx(30 / 39 - 0.5) and v.p is None and v.mark == ""
    assert any("different samples" in n for n in t.notes)
    # a run folder whose samples.jsonl lost a line is not that run any more: refused, naming the file
    edited = tmp_path / "edited"
    shutil.copytree(runs["B"], edited)
    lines = (edited / SAMPLES).read_text().splitlines()
    (edited / SAMPLES).write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match=r"edited/samples\.jsonl"):
        table_of([runs["A"], edited], baseline="A")


def test_metrics_selection_errors_name_the_flag(runs):
    inputs = load_inputs([str(runs["A"])])
    with pytest.raises(ConfigError, match="--metrics toy:nope"):
        build_table(inputs, metrics="toy:nope")


def test_output_is_deterministic_and_has_no_timestamps(runs):
    from molmo_eval.run.records import read_record

    paths = [runs["A"], runs["B"]]
    a = publish.render(table_of(paths, baseline="A", ci=True), "md", title="T")
    b = publish.render(table_of(paths, baseline="A", ci=True), "md", title="T")
    assert a == b
    created = read_record(runs["A"]).created
    assert created[:10] not in a  # the run's date never leaks into a report


# --- ablation layout -------------------------------------------------------------------------------


def test_ablation_rows_follow_the_grid_axes(tmp_path, toy_task, toy_root):
    grid = toy_grid(tmp_path / "grid", toy_root)
    t = table_of([grid], baseline="stages=1+2+3 data=1 pointing=on")
    assert t.layout == "ablation" and t.axes == ("stages", "data", "pointing")
    order = [(r.entry.coords["stages"], r.entry.coords["data"], r.entry.coords["pointing"]) for r in t.rows]
    assert order == [(s, d, p) for s in ("1", "1+2", "1+2+3") for d in ("0.5", "1") for p in ("on", "off")]
    for r in t.rows:
        c = r.entry.coords
        want = len(
            correct_ids(tuple(int(x) for x in c["stages"].split("+")), c["data"], c["pointing"] == "on")
        )
        assert r.values[0].mv.value == pytest.approx(want / 40)
    assert (
        t.n_tests == 7
    )  # 8 distinct runs (stage 1 and 2 cells share theirs across pointing), less the baseline
    md = render_markdown(t)
    assert md.splitlines()[0] == "| Stages | Data | Pointing | toy |"
    assert "| 1 | 50% | on | 20.0 (-75.0**) |" in md
    assert "| 1+2+3 | 100% | on (baseline) | **95.0** |" in md


def test_cells_sharing_a_run_with_the_baseline_are_not_tested(tmp_path, toy_task, toy_root):
    grid = toy_grid(tmp_path / "grid", toy_root)
    t = table_of([grid], baseline="stages=1+2 data=1 pointing=on")
    row = next(r for r in t.rows if r.entry.coords == {"stages": "1+2", "data": "1", "pointing": "off"})
    assert row.values[0].delta == 0.0 and row.values[0].p is None and row.values[0].test == SAME_RUN
    assert t.n_tests == 7 and not t.notes  # 8 distinct runs less the baseline's


def test_ablation_layout_needs_a_grid(runs):
    with pytest.raises(ConfigError, match="needs a grid record"):
        table_of([runs["A"]], layout="ablation")


# --- HTML and the viewer -------------------------------------------------------------------------


def test_html_is_self_contained_with_plots_and_samples(runs):
    t = table_of([runs["A"], runs["B"]], baseline="A")
    page = publish.render(
        t, "html", title="Toy", store=SampleStore(), samples="disagree", n=3
    )
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<script" not in page
    assert page.count("data:image/png;base64,") >= 1  # the benchmark plot
    assert page.count("data:image/jpeg;base64,") == 3  # three disagreements, drawn with their image
    assert page.count('class="card"') == 3
    again = publish.render(
        table_of([runs["A"], runs["B"]], baseline="A"),
        "html",
        title="Toy",
        store=SampleStore(),
        samples="disagree",
        n=3,
    )
    assert page == again


def test_viewer_picks_worst_best_random_and_disagreements():
    lines = [{"uid": f"t/s/{i}", "scores": {"accuracy": v}} for i, v in enumerate([1.0, 0.0, 0.5, None, 0.0])]
    assert [ln["uid"] for ln in viewer.select(lines, "worst", 2)] == ["t/s/1", "t/s/4"]
    assert [ln["uid"] for ln in viewer.select(lines, "best", 2)] == ["t/s/0", "t/s/2"]
    rnd = viewer.select(lines, "random", 3, seed=1)
    assert len(rnd) == 3 and all(ln["scores"]["accuracy"] is not None for ln in rnd)
    assert rnd == viewer.select(lines, "random", 3, seed=1)
    other = [{"uid": ln["uid"], "scores": {"accuracy": 1.0}} for ln in lines]
    pairs = viewer.disagreements(lines, other, 5)
    assert [a["uid"] for a, _ in pairs] == ["t/s/1", "t/s/4", "t/s/2"]  # largest difference first


def test_sample_score_falls_back_to_the_usual_columns():
    assert viewer.sample_score({"scores": {"f1": None, "accuracy": 1.0}}, "f1") == 1.0
    assert viewer.sample_score({"scores": {"correct": 0.0, "tp": 1.0}}, "f1") == 0.0
    assert viewer.sample_score({"scores": {"tp": 1.0}}, "f1") is None


def test_draw_puts_ground_truth_green_and_predictions_red():
    import numpy as np
    from PIL import Image

    pixels = np.full((200, 200, 3), 128, dtype=np.uint8)  # drawn at 1.6x (MIN_SIDE 320)
    line = {
        "target": {"box": [20, 20, 120, 120]},
        "answer": {"kind": "points", "value": [[160, 40]], "parse_ok": True},
    }
    img = np.asarray(Image.open(io.BytesIO(viewer.draw(pixels, [line]))).convert("RGB")).astype(int)
    assert img.shape == (320, 320, 3)
    s = 1.6
    green = img[int(70 * s), int(20 * s)]  # on the box's left edge
    red = img[int(40 * s), int(160 * s)]  # the predicted point
    grey = img[int(180 * s), int(180 * s)]
    assert green[1] > 150 and green[0] < 100, green
    assert red[0] > 180 and red[1] < 110, red
    assert abs(grey - 128).max() < 12, grey


def test_target_mask_decodes_rle_and_polygons():
    import numpy as np
    from pycocotools import mask as mask_utils

    m = np.zeros((10, 12), dtype=np.uint8, order="F")
    m[2:5, 3:9] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode()
    got = viewer.target_mask({"mask": rle}, (10, 12))
    assert got is not None and got.sum() == 18 and got[2:5, 3:9].all()
    poly = viewer.target_mask({"masks": [[[1, 1, 6, 1, 6, 6, 1, 6]]]}, (10, 12))
    assert poly is not None and poly[3, 3] and not poly[8, 10]


def test_image_finder_uses_the_recorded_data_root(runs, toy_root):
    from molmo_eval.data.images import load_image
    from molmo_eval.run.records import read_record

    config = read_record(runs["A"]).config
    ref, why = viewer.ImageFinder().find(config, "toy", "official", "a", "3")
    assert why == "" and ref is not None
    assert load_image(ref, decode=True).size == (8 + 3 % 5, 8)  # toy image 3 is (11, 8)
    ref, why = viewer.ImageFinder().find(config, "toy", "official", "a", "999")
    assert ref is None and "999" in why


# --- the command line ------------------------------------------------------------------------------


def test_cli_writes_each_format_from_the_suffix(runs, tmp_path, capsys):
    tex = tmp_path / "t.tex"
    assert main(["report", str(runs["A"]), str(runs["B"]), "--baseline", "A", "--out", str(tex)]) == 0
    assert tex.read_text().startswith("% Generated by `molmo-eval report`")
    assert main(["report", str(runs["A"]), str(runs["B"]), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("label,toy:accuracy (%)")
    md = tmp_path / "t.md"
    assert (
        main(
            [
                "report",
                str(runs["A"]),
                str(runs["B"]),
                "--baseline",
                "A",
                "--samples",
                "worst",
                "--n",
                "2",
                "--out",
                str(md),
            ]
        )
        == 0
    )
    text = md.read_text()
    assert "## Samples" in text and text.count("- **toy/a/") == 2
    assert main(["report", str(tmp_path / "missing")]) == 2


# --- reports/ ------------------------------------------------------------------------------------

MANIFEST = """
[[report]]
name = "models"
title = "Toy models"
inputs = ["A=records/A", "B=records/B"]
baseline = "A"
formats = ["md", "latex", "csv", "html"]
samples = "worst"
n = 2

[[report]]
name = "ablation"
title = "Toy ablation"
inputs = ["records/grid"]
baseline = "stages=1+2+3 data=1 pointing=on"
ci = true
formats = ["md", "latex", "csv"]
"""

TEXT = (".md", ".tex", ".csv")


def _make_reports(root: Path, runs: dict[str, Path], toy_root: Path) -> None:
    (root / "records").mkdir(parents=True)
    for k in ("A", "B"):
        shutil.copytree(runs[k], root / "records" / k)
    toy_grid(root / "records" / "grid", toy_root)
    (root / "reports.toml").write_text(MANIFEST)


def test_regenerate_renders_every_report_the_same_way_twice(tmp_path, runs, toy_root):
    root = tmp_path / "reports"
    _make_reports(root, runs, toy_root)
    written = publish.regenerate(root)
    names = {p.relative_to(root).as_posix() for p in written}
    assert {
        "models.md",
        "models.tex",
        "models.csv",
        "models.html",
        "ablation.md",
        "ablation.tex",
        "ablation.csv",
        "README.md",
        "plots/ablation-data-scaling.png",
        "plots/ablation-stages.pdf",
        "plots/ablation-pointing.png",
        "plots/models-benchmarks.png",
    } <= names
    again = tmp_path / "again"
    publish.regenerate(root, out=again)
    for p in written:
        rel = p.relative_to(root)
        if p.suffix in TEXT or p.name == "README.md":
            assert (again / rel).read_bytes() == p.read_bytes(), rel
        elif p.suffix == ".html":
            assert strip_images((again / rel).read_text()) == strip_images(p.read_text())
        else:
            assert (again / rel).stat().st_size > 1000
    readme = (root / "README.md").read_text()
    assert "molmo-eval report --regenerate reports" in readme and "## Toy ablation" in readme
    assert "![ablation-data-scaling](plots/ablation-data-scaling.png)" in (root / "ablation.md").read_text()


def test_regenerate_reads_gzipped_samples(tmp_path, runs, toy_root):
    import gzip

    root = tmp_path / "reports"
    _make_reports(root, runs, toy_root)
    (root / "reports.toml").write_text(
        MANIFEST.split("[[report]]")[0]
        + "[[report]]"
        + MANIFEST.split("[[report]]")[1].replace('"latex", "csv", "html"', '"csv"')
    )
    plain = root / "records" / "B" / "samples.jsonl"
    with gzip.open(str(plain) + ".gz", "wt", encoding="utf-8") as f:
        f.write(plain.read_text())
    before = publish.regenerate(root)
    csv_before = (root / "models.csv").read_text()
    plain.unlink()
    publish.regenerate(root)
    assert (root / "models.csv").read_text() == csv_before and before


def test_manifest_errors_name_the_report(tmp_path):
    (tmp_path / "reports.toml").write_text('[[report]]\nname = "x"\ninputs = ["a"]\nformats = ["pdf"]\n')
    with pytest.raises(ConfigError, match="report x: unknown format"):
        publish.regenerate(tmp_path)


def strip_images(page: str) -> str:
    """HTML with embedded image payloads replaced (PNG/JPEG bytes depend on library versions)."""
    return re.sub(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/=]+", "data:image", page)


def test_committed_reports_equal_what_the_command_renders(tmp_path):
    """The committed reports/ are what `molmo-eval report --regenerate reports` renders from the
    committed records: text formats byte for byte, HTML up to its embedded images, every plot present."""
    root = REPO / "reports"
    if not (root / publish.MANIFEST).is_file():
        pytest.skip("reports/reports.toml is not committed yet")
    specs = publish.read_manifest(root)
    missing = [i for s in specs for i in s.inputs if not (root / i.split("=")[-1]).exists()]
    if missing:
        pytest.skip(f"records not committed yet: {', '.join(missing)}")
    written = publish.regenerate(root, out=tmp_path)
    for p in written:
        rel = p.relative_to(tmp_path)
        committed = root / rel
        assert committed.is_file(), f"{rel} is rendered but not committed"
        if p.suffix in TEXT or p.name == "README.md":
            assert committed.read_text() == p.read_text(), f"{rel} differs from its records; regenerate it"
        elif p.suffix == ".html":
            assert strip_images(committed.read_text()) == strip_images(p.read_text()), rel

"""Issue 18: the grid's paper axes (pointing off/on/only, clean vs noisy captions), the world's
ablation streams, tokens/s measured in a run, the paper tables with their findings, and the
presentation rules (NaN is not 0, no "Baseline (baseline)", LaTeX minus signs, scrolling HTML)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
from report_helpers import toy_run

from molmo_eval.core.errors import ConfigError
from molmo_eval.core.types import CoordSpace, MetricValue
from molmo_eval.grid.record import cell_doc, save_grid
from molmo_eval.grid.spec import GridSpec, load_spec, parse_captions, parse_pointing
from molmo_eval.parsing.points import parse_points
from molmo_eval.report.build import build_table
from molmo_eval.report.inputs import load_inputs
from molmo_eval.report.latex import minus, render_latex
from molmo_eval.report.model import Column, Entry, Row, Table, Value
from molmo_eval.report.paper import Ablation, build_paper
from molmo_eval.report.presentation import cell_text, row_heads
from molmo_eval.run.records import read_record
from molmo_eval.run.throughput import MILLIS, TOKENS, Timed, tokens_per_s

# --- spec ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,want", [("on", "on"), ("off", "off"), ("only", "only"), ("no", "off"),
                                       (True, "on"), (False, "off")])
def test_pointing_values(text, want):
    assert parse_pointing(text) == want


@pytest.mark.parametrize("text,want", [("clean", "clean"), ("noisy", "noisy×10"), ("noisyx10", "noisy×10"),
                                       ("noisy×3", "noisy×3"), ("noisy*1", "noisy×1")])
def test_caption_values(text, want):
    assert parse_captions(text) == want


@pytest.mark.parametrize("bad", ["noisyx0", "dirty", "noisy×abc"])
def test_bad_caption_values_are_config_errors(bad):
    with pytest.raises(ConfigError):
        parse_captions(bad)


def test_tiny_preset_brings_the_paper_axes_and_flags_win():
    spec = load_spec(None, [], {"preset": "tiny"})
    assert spec.pointing == ("off", "on", "only") and spec.captions == ("clean", "noisy×10")
    assert spec.tasks == ("vqav2", "gqa", "refcoco", "pointqa") and spec.bench_size == "tiny"
    assert len(spec.cells()) == 18 and "captions" in spec.varying
    mine = load_spec(None, [], {"preset": "tiny", "tasks": "vqav2", "limit": 2})
    assert mine.pointing == ("off", "on", "only") and mine.tasks == ("vqav2",) and mine.limit == 2
    axes = load_spec(None, ["pointing=on"], {"preset": "tiny", "tasks": "vqav2"})  # axes given: model preset only
    assert axes.pointing == ("on",) and axes.captions == ("clean",) and axes.limit is None
    assert load_spec(None, [], {"tasks": "vqav2"}).captions == ("clean",)  # small: no preset axes


def test_old_grid_records_read_with_the_default_captions():
    spec = GridSpec.from_json({"stages": ["1"], "data": ["1"], "pointing": ["on", "off"], "seed": [0],
                               "tasks": ["vqav2"]})
    assert spec.captions == ("clean",) and spec.pointing == ("on", "off")
    assert "captions" not in spec.varying


# --- recipe: what each setting trains on ---------------------------------------------------------


def stages_of(**axes):
    from molmo_eval.grid.recipe import cell_stages

    spec = load_spec(None, [f"{k}={v}" for k, v in axes.items()], {"tasks": "vqav2", "preset": "small"})
    (cell,) = spec.cells()
    return {s.number: s for s in cell_stages("small", cell, 1.0, True)}


def test_pointing_settings_change_only_the_point_sources():
    on, off, only = (stages_of(stages="1+2+3", pointing=p) for p in ("on", "off", "only"))
    assert "point" in on[3].mixture and "refer_text" not in on[3].mixture
    assert "point" not in off[3].mixture and off[3].mixture["refer_text"] == on[3].mixture["point"]
    assert set(only[3].mixture) == {"point", "bench_point"}
    assert on[2] == off[2] == only[2] and on[1] == off[1] == only[1]


def test_noisy_captions_replace_stage_one_captions_on_k_times_the_steps():
    clean, noisy = (stages_of(stages="1+2", captions=c) for c in ("clean", "noisy×10"))
    assert clean[1].mixture == {"cap": 1.0} and noisy[1].mixture == {"cap_noisy": 1.0}
    assert noisy[1].steps == 10 * clean[1].steps and noisy[2] == clean[2]


def test_stage_one_is_shared_by_every_pointing_setting_and_not_by_captions():
    from molmo_eval.grid.plan import make_plan

    spec = load_spec(None, ["stages=1+2+3", "pointing=off,on,only", "captions=clean,noisy"],
                     {"tasks": "vqav2", "preset": "tiny"})
    plan = make_plan(spec)
    firsts = {plan.chains[c][1] for c in plan.cells}  # [0] is the encoder pre-training
    assert len(firsts) == 2  # one per caption setting
    thirds = {plan.chains[c][-1] for c in plan.cells}
    assert len(thirds) == 6


def test_stage_jobs_train_on_the_presets_pool_scaled_by_data_and_captions():
    """Grid stages use the preset's scene pool as `molmo-eval train` does (so the frozen encoder's
    features are reused); a data fraction scales it, noisy×K captions read K times its scenes, and
    only the stage that reads the noisy captions carries (and is keyed by) their pool."""
    from molmo_eval.grid.plan import make_plan, stream_pools
    from molmo_eval.reference_model.train import POOL

    assert stream_pools("small", 1.0, "clean") == (POOL["small"], ())
    assert stream_pools("small", 0.25, "noisy×10") == (POOL["small"] // 4, (("cap_noisy", 10 * POOL["small"] // 4),))
    assert stream_pools("tiny", 1.0, "noisy×10") == (0, ())  # no pool: every scene new
    spec = load_spec(None, ["stages=1+2", "captions=clean,noisy"], {"tasks": "vqav2", "preset": "small"})
    plan = make_plan(spec)
    clean, noisy = (plan.chains[c] for c in plan.cells)
    assert clean[0] == noisy[0]  # the encoder pre-training reads no captions: shared
    assert "clean/noisy×10 captions" in plan.stages[clean[0]].cells  # and its progress line says so
    s1 = plan.stages[noisy[1]]
    assert s1.pool == POOL["small"] and dict(s1.pools) == {"cap_noisy": 10 * POOL["small"]}
    assert plan.stages[noisy[2]].pools == () and plan.stages[clean[1]].pools == ()
    half = make_plan(load_spec(None, ["stages=1", "data=0.5"], {"tasks": "vqav2", "preset": "small"}))
    assert {s.pool for s in half.stages.values()} == {POOL["small"] // 2}


def test_a_streams_own_pool_overrides_the_shared_one():
    from molmo_eval.reference_model import train as rt
    from molmo_eval.reference_model.config import preset

    cfg = rt.TrainConfig(preset("tiny"), (), pool=8, pools={"cap_noisy": 80})
    sources = rt.make_sources(cfg, {})
    assert sources["cap"].pool == sources["ask"].pool == 8 and sources["cap_noisy"].pool == 80
    keys = {g.key for g in itertools.islice(sources["cap_noisy"].groups(0), 200)}
    assert len(keys) == 80  # cycles through its own 80 scenes


# --- the world's ablation streams ----------------------------------------------------------------


def test_web_captions_are_short_and_partly_wrong():
    from molmo_eval.reference_model.world import training as w

    dense = [e.answer for e in itertools.islice(w.caption_stream(0), 50)]
    web = list(itertools.islice(w.web_caption_stream(0), 200))
    assert max(len(e.answer.split()) for e in web) < min(len(c.split()) for c in dense)
    wrong = 0
    for e in web[:100]:
        from molmo_eval.reference_model.world.scene import make_scene

        scene = make_scene(e.scene_id)
        present = {(o.colour, o.category) for o in scene.objects}
        said = e.answer.lower()
        wrong += not any(f"{c} {k}" in said for c, k in present)
    assert 5 <= wrong <= 80  # some captions are wrong, most are not
    assert [e.answer for e in itertools.islice(w.web_caption_stream(0), 5)] == [e.answer for e in web[:5]]


def test_text_referring_answers_have_no_point_tokens_and_parse_to_the_target():
    from molmo_eval.reference_model.world import training as w

    for e in itertools.islice(w.refer_text_stream(0), 30):
        assert "<point" not in e.answer and e.kind == "refer/text" and len(e.points) == 1
        h, wd = e.image.shape[:2]
        (x, y), = parse_points(e.answer, CoordSpace.BINS, (wd, h))
        tx, ty = e.points[0]
        assert abs(x - tx) <= wd / 100 and abs(y - ty) <= h / 100


def test_bench_referring_answers_as_plain_text():
    from molmo_eval.training.bench_examples import text_coordinates

    assert text_coordinates("<point> <x_4> <y_67>") == "(4, 67)"
    assert text_coordinates("There are none.") == "There are none."


# --- throughput ----------------------------------------------------------------------------------


class _Gen:
    def __init__(self, text):
        self.text = text


class _Model:
    name = "m"

    def generate(self, requests):
        return [_Gen("a b c") for _ in requests]


def test_timed_counts_generated_tokens_and_time():
    m = Timed(_Model())
    m.generate([1, 2])
    c = m.counts()
    assert c["generated_tokens"] == 6 and c["generate_ms"] >= 0 and m.name == "m"
    assert tokens_per_s({TOKENS: 6, MILLIS: 2}) == 3000.0
    assert math.isnan(tokens_per_s({TOKENS: 0, MILLIS: 0})) and math.isnan(tokens_per_s({}))
    assert tokens_per_s({TOKENS: 0, MILLIS: 5}) == 0.0


# --- paper tables and findings -------------------------------------------------------------------

TOY_POINTING = Ablation(
    "pointing", "Pointing", "pointing",
    (("off", "No pointing"), ("on", "With pointing"), ("only", "Pointing only")),
    ("toy",), "on",
    (("on", "off", "toy", 1), ("only", "on", "toy", 1)),
    design=((("on", "off", "toy"), 6.8),),
)


@pytest.fixture
def pointing_grid(tmp_path, toy_task, toy_root):
    """Stages 1+2+3 x pointing: off gets 10 right, on 30, only 31 (of 40)."""
    spec = GridSpec(stages=((1, 2, 3),), pointing=("off", "on", "only"), tasks=("toy",), preset="tiny",
                    bootstrap=100)
    right = {"off": 10, "on": 30, "only": 31}
    cells = []
    for cell in spec.cells():
        key = f"p-{cell.pointing}"
        rec = read_record(toy_run(tmp_path / "runs" / key, toy_root, range(right[cell.pointing]), name=key))
        cells.append(cell_doc(cell, key, f"runs/{key}", rec))
    save_grid(tmp_path, spec, cells, complete=True)
    return tmp_path


def test_findings_state_what_the_numbers_support_and_only_that(pointing_grid):
    paper = build_paper(load_inputs([str(pointing_grid)]), ablations=(TOY_POINTING,), n_boot=200)
    ((title, table),) = paper.tables
    assert title == "Pointing" and [r.entry.label for r in table.rows] == [
        "No pointing", "With pointing", "Pointing only"]
    yes, no = paper.findings
    assert yes.startswith("With pointing beat No pointing on") and "by +50.0 points (p < 0.001;" in yes
    assert yes.endswith("the design document: +6.8).")  # its number, where the design gives one
    assert no.startswith("Not reproduced: Pointing only beat With pointing") and "+2.5 points" in no
    assert "design" not in no


def test_a_grid_without_the_rows_leaves_the_table_out(pointing_grid):
    other = Ablation("captions", "Caption quality", "captions", (("noisy×10", "N"), ("clean", "C")),
                     ("toy",), "noisy×10", ())
    paper = build_paper(load_inputs([str(pointing_grid)]), ablations=(other,))
    assert not paper.tables and "table left out" in paper.notes[0]


def test_report_command_renders_paper_tables_in_every_format(pointing_grid, tmp_path, monkeypatch):
    import molmo_eval.report.paper as paper_mod
    from molmo_eval.cli import main

    monkeypatch.setattr(paper_mod, "ABLATIONS", (TOY_POINTING,))
    monkeypatch.setattr(paper_mod.build_paper, "__kwdefaults__",
                        {**paper_mod.build_paper.__kwdefaults__, "ablations": (TOY_POINTING,)})
    for suffix in ("md", "tex", "html", "csv"):
        out = tmp_path / f"t.{suffix}"
        assert main(["report", str(pointing_grid), "--out", str(out), "--no-plots"]) == 0
        text = out.read_text()
        assert "Pointing only" in text and "No pointing" in text, suffix
        if suffix != "csv":
            assert "With pointing beat No pointing" in text, suffix
    assert main(["report", str(pointing_grid), "--out", str(out), "--no-paper"]) == 0
    assert "Pointing only" not in out.read_text()


# --- presentation --------------------------------------------------------------------------------


def _table(values, label="Baseline", baseline=True):
    col = Column("toy", "f1", "F1")
    rec = None
    rows = tuple(Row(Entry(f"{label}{i or ''}", rec, None), (v,), None, baseline and i == 0)
                 for i, v in enumerate(values))
    return Table((col,), rows, "models", baseline="Baseline")


def test_undefined_is_not_zero_and_not_missing():
    t = _table([Value(MetricValue(float("nan"), None, None, 5)), Value(MetricValue(0.0, None, None, 5)),
                Value(None)])
    texts = [cell_text(t, r.values[0]).value for r in t.rows]
    assert texts == ["NaN", "0.0", "–"]
    from molmo_eval.report.presentation import caption

    assert any("NaN" in line and "not 0" in line for line in caption(t))


def test_no_baseline_baseline_label():
    t = _table([Value(MetricValue(0.5, None, None, 5))])
    assert row_heads(t, t.rows[0]) == ["Baseline"]
    t2 = _table([Value(MetricValue(0.5, None, None, 5))], label="ours")
    assert row_heads(t2, t2.rows[0]) == ["ours (baseline)"]


def test_latex_true_minus_and_aligned_decimal_columns():
    assert minus("-3.7") == "$-$3.7" and minus("+1.0") == "+1.0"
    t = _table([Value(MetricValue(0.5, 0.4, 0.6, 5)), Value(MetricValue(0.25, None, None, 5), delta=-0.25)])
    tex = render_latex(t)
    assert "r@{}l" in tex and "($-$25.0)" in tex and "\\multicolumn{2}{c}{F1}" in tex


def test_html_table_scrolls_inside_the_page(runs_for_html):
    from molmo_eval.report.html_page import CSS, html_table

    assert ".scroll{max-width:100%;overflow-x:auto}" in CSS
    html = html_table(build_table(load_inputs([str(runs_for_html)])))
    assert html.startswith('<div class="scroll"><table>') and html.endswith("</table></div>")


@pytest.fixture
def runs_for_html(tmp_path, toy_task, toy_root):
    return toy_run(tmp_path / "r", toy_root, range(5))


def test_all_zero_panel_gets_a_sensible_axis_and_nan_is_marked(tmp_path):
    pytest.importorskip("matplotlib")
    from molmo_eval.report import plots

    assert callable(getattr(plots, "value_limits", None))
    assert plots.value_limits([0.0, 0.0], rate=True) == (0, 100)
    assert plots.value_limits([0.0, 0.0], rate=False)[1] > 0
    assert plots.value_limits([float("nan")], rate=False)[1] > 0


def _unused(p: Path) -> None:  # keep imports honest for linters
    del p


# --- quiet training and the tiny grid end to end --------------------------------------------------


def test_quiet_silences_the_training_bars(tmp_path, capfd):
    from molmo_eval.grid.jobs import train_stage
    from molmo_eval.grid.plan import make_plan

    spec = load_spec(None, ["stages=1", "pointing=on", "captions=noisy×1"],
                     {"tasks": "vqav2", "preset": "tiny", "bench": False})
    plan = make_plan(spec)
    (chain,) = plan.chains.values()
    train_stage(plan.stages[chain[0]], str(tmp_path / "q"), True)
    train_stage(plan.stages[chain[1]], str(tmp_path / "q"), True)
    assert capfd.readouterr().err == ""
    train_stage(plan.stages[chain[0]], str(tmp_path / "loud"), False)
    assert "stage 0" in capfd.readouterr().err


@pytest.mark.slow
def test_tiny_grid_end_to_end(tmp_path, capfd):
    """`molmo-eval ablate --preset tiny` builds its data, trains, evaluates and reports (about a minute)."""
    import json

    from molmo_eval.cli import main

    out = tmp_path / "grid"
    assert main(["ablate", "--preset", "tiny", "--out", str(out), "--threads", "1", "--quiet"]) == 0
    err = capfd.readouterr().err
    assert "stage 1 caption [" not in err  # no training bars under --quiet
    doc = json.loads((out / "grid.json").read_text())
    assert doc["complete"] and len(doc["cells"]) == 18
    assert all(c["record"]["counts"]["model_generated_tokens"] > 0 for c in doc["cells"])
    md = tmp_path / "g.md"
    assert main(["report", str(out), "--out", str(md), "--no-plots"]) == 0
    text = md.read_text()
    for title in ("## Findings", "## Training stage importance", "## Pointing", "## Caption quality",
                  "## Full grid"):
        assert title in text

"""Plots of report tables: which figures a table gets, what they show, that they are readable (axes
labelled, no overlapping labels, nothing outside the figure) and reproducible (no dates)."""

from __future__ import annotations

import io
import sys

import pytest
from report_helpers import correct_ids, toy_grid, toy_run

from molmo_eval.core.errors import MissingDependency
from molmo_eval.report import plots
from molmo_eval.report.build import build_table
from molmo_eval.report.inputs import load_inputs
from molmo_eval.report.model import Entry, Inputs


@pytest.fixture
def ablation(tmp_path, toy_task, toy_root):
    grid = toy_grid(tmp_path / "grid", toy_root)
    return build_table(
        load_inputs([str(grid)]), baseline="stages=1+2+3 data=1 pointing=on"
    )


@pytest.fixture
def models(tmp_path, toy_task, toy_root):
    a = toy_run(tmp_path / "a", toy_root, range(10))
    b = toy_run(tmp_path / "b", toy_root, range(25))
    return build_table(load_inputs([f"Model A={a}", f"Model B={b}"]))


def test_an_ablation_gets_scaling_stage_pointing_and_breakdown_plots(ablation):
    assert [name for name, _ in plots.figures(ablation)] == [
        "data-scaling",
        "stages",
        "pointing",
        "breakdown-toy-shade",
    ]


def test_a_model_comparison_gets_benchmark_and_breakdown_plots(models):
    assert [name for name, _ in plots.figures(models)] == ["benchmarks", "breakdown-toy-shade"]


def test_data_scaling_draws_the_recorded_values(ablation):
    fig = dict(plots.figures(ablation))["data-scaling"]
    ax = fig.axes[0]
    series = {c.get_label(): c.lines[0].get_ydata().tolist() for c in ax.containers}
    for stages, pointing in (("1+2+3", True), ("1+2+3", False), ("1", True)):
        want = [
            100 * len(correct_ids(tuple(map(int, stages.split("+"))), d, pointing)) / 40 for d in ("0.5", "1")
        ]
        assert series[f"stages {stages}, pointing {'on' if pointing else 'off'}"] == pytest.approx(want)


def test_pointing_bars_compare_on_and_off_at_full_data(ablation):
    fig = dict(plots.figures(ablation))["pointing"]
    bars = {
        c.get_label(): [p.get_height() for p in c.patches]
        for c in fig.axes[0].containers
        if hasattr(c, "patches")
    }
    assert bars == {"pointing on": [pytest.approx(95.0)], "pointing off": [pytest.approx(80.0)]}


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


def test_every_figure_is_labelled_and_nothing_overlaps(ablation, models):
    for table in (ablation, models, long_keys_table()):
        for name, fig in plots.figures(table):
            fig.canvas.draw()
            r = fig.canvas.get_renderer()
            box = fig.bbox
            for ax in fig.axes:
                if not ax.axison or not ax.has_data():
                    continue
                assert ax.get_xlabel() or ax.get_ylabel(), f"{name}: unlabelled axes"
                for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
                    ext = [t.get_window_extent(r) for t in ticks if t.get_text() and t.get_visible()]
                    for i in range(len(ext)):
                        for j in range(i + 1, len(ext)):
                            assert not _overlap(ext[i], ext[j]), f"{name}: tick labels overlap"
                for text in [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels()]:
                    if text.get_text():
                        e = text.get_window_extent(r)
                        assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1, (
                            f"{name}: {text.get_text()!r} cut off"
                        )
            legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
            texts = [
                t
                for t in [fig._suptitle]
                + [
                    x
                    for ax in fig.axes
                    if ax.axison
                    for x in (
                        ax.title,
                        ax.xaxis.label,
                        ax.yaxis.label,
                        *ax.get_xticklabels(),
                        *ax.get_yticklabels(),
                    )
                ]
                if t is not None and t.get_text() and t.get_visible()
            ]
            for leg in legends:
                e = leg.get_window_extent(r)
                assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1 and e.y0 >= box.y0 - 1, (
                    f"{name}: legend cut off"
                )
                for t in texts:
                    assert not _overlap(e, t.get_window_extent(r)), f"{name}: legend covers {t.get_text()!r}"
                for ax in fig.axes:
                    if ax.axison and ax.has_data() and leg.axes is not ax:
                        assert not _overlap(e, ax.get_window_extent(r)), f"{name}: legend covers a panel"


def long_keys_table():
    """One row whose task has a breakdown of many keys with long, wrapping names (as MMBench's)."""
    from molmo_eval.core.types import MetricValue, ModelInfo, RunRecord, TaskResult

    keys = [
        "coarse perception",
        "finegrained perception (cross-instance)",
        "finegrained perception (instance-level)",
        "logic reasoning",
        "spatial relationship",
        "structuralized imagetext understanding",
        "attribute reasoning",
        "relation reasoning",
    ]
    mv = MetricValue(0.4, 0.3, 0.5, 50)
    tr = TaskResult(
        "mmbench",
        ("dev_en",),
        "official",
        "1",
        50,
        {"circular_accuracy": mv},
        {"l2_category": {k: {"circular_accuracy": mv} for k in keys}},
        primary_metric="circular_accuracy",
    )
    rec = RunRecord("r", "", "ok", {}, {}, ModelInfo("m", "f", "bins"), {"mmbench": tr})
    entry = Entry("one model", rec, None)
    return build_table(Inputs((entry,)))


def test_long_wrapped_category_names_do_not_collide():
    ((name, fig),) = [f for f in plots.figures(long_keys_table()) if f[0].startswith("breakdown")]
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    ext = [t.get_window_extent(r) for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert len(ext) == 8
    assert not any(_overlap(ext[i], ext[j]) for i in range(8) for j in range(i + 1, 8)), name


def test_saved_plots_are_reproducible_and_carry_no_date(ablation, tmp_path):
    from PIL import Image

    first = plots.save_plots(ablation, tmp_path / "one", prefix="g")
    second = plots.save_plots(ablation, tmp_path / "two", prefix="g")
    assert [p.name for p in first] == [p.name for p in second]
    assert {p.suffix for p in first} == {".png", ".pdf"} and len(first) == 8
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
        if a.suffix == ".pdf":
            assert b"CreationDate" not in a.read_bytes()
        else:
            img = Image.open(io.BytesIO(a.read_bytes()))
            assert "Software" not in img.info and img.size[0] >= 750  # at least 5 inches at 150 dpi


def test_missing_matplotlib_names_the_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependency, match=r"pip install 'matplotlib'"):
        plots.figures(None)

"""Small real runs and grid records for the report, plot and grid tests.

Runs are made by the real runner on the toy task (tests/toy.py) with a scripted model that answers
exactly the samples it is told to answer correctly, so every number in a test is known by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from toy import oracle_text

import molmo_eval
from molmo_eval.grid.record import cell_doc, save_grid
from molmo_eval.grid.spec import DataSize, GridSpec
from molmo_eval.models.scripted import ScriptedModel
from molmo_eval.run.records import read_record


def toy_run(out: Path, root: Path, correct: Iterable[int], *, n_boot: int = 200, name: str = "",
            limit: int | None = None) -> Path:
    """Evaluate split ``a`` of the toy task; samples whose id is in ``correct`` are answered right,
    the rest "purple" (never right)."""
    ok = set(correct)

    def fn(req):  # noqa: ANN001 - scripted callable
        sid = int(req.uid.split("/")[-1])
        return oracle_text(req.uid, root) if sid in ok else "purple"

    model = ScriptedModel(fn=fn, fingerprint=f"toy-{name or out.name}")
    molmo_eval.evaluate("toy", model, data_root=root, output_path=out, bootstrap=n_boot, use_cache=False,
                        limit=limit)
    return out


GRID_STAGES = ((1,), (1, 2), (1, 2, 3))
GRID_DATA = ("0.5", "1")


def correct_ids(stages: tuple[int, ...], data: str, pointing: bool, n: int = 40) -> range:
    """How many toy samples a cell gets right: more stages and more data help; pointing helps only
    after stage 3 (cells that differ only in pointing before stage 3 share one run)."""
    k = {1: 8, 2: 20, 3: 28}[stages[-1]] + (4 if data == "1" else 0)
    if stages[-1] == 3 and pointing:
        k += 6
    return range(min(k, n))


def toy_grid(out: Path, root: Path) -> Path:
    """A grid record over stages x data x pointing whose cells are toy runs (see `correct_ids`)."""
    spec = GridSpec(
        stages=GRID_STAGES,
        data=tuple(DataSize.parse(d) for d in GRID_DATA),
        pointing=("on", "off"),
        tasks=("toy",),
        preset="tiny",
        bootstrap=200,
    )
    cells, made = [], {}
    for cell in spec.cells():
        ids = correct_ids(cell.stages, cell.data.text, cell.pointing != "off")
        key = f"k{len(ids)}-{cell.coords()['stages']}-{cell.data.text}"
        if key not in made:
            made[key] = read_record(toy_run(out / "runs" / key, root, ids, name=key))
        cells.append(cell_doc(cell, key, f"runs/{key}", made[key]))
    save_grid(out, spec, cells, complete=True)
    return out

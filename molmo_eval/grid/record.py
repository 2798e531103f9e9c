"""The grid record: ``OUT/grid.json``, the spec and every finished cell's coordinates, run directory
(relative to the grid folder) and RunRecord, written atomically; what `molmo-eval report` reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molmo_eval.core import jsonio
from molmo_eval.core.errors import DataError
from molmo_eval.core.types import RunRecord
from molmo_eval.grid.spec import Cell, GridSpec
from molmo_eval.run.records import atomic_write

GRID_FILE = "grid.json"
GRID_FORMAT = 1
FORMAT_KEY = "molmo_eval_grid"


@dataclass(frozen=True)
class GridCell:
    coords: Mapping[str, str]
    label: str
    key: str
    run_dir: Path
    record: RunRecord


@dataclass(frozen=True)
class GridRecord:
    path: Path  # the grid.json file
    spec: GridSpec
    cells: tuple[GridCell, ...]
    complete: bool
    plan: Mapping[str, Any]


def cell_doc(cell: Cell, key: str, run: str, record: RunRecord, stages: Sequence[str] = ()) -> dict[str, Any]:
    """One cell of a grid record; ``run`` is its run directory relative to the grid folder."""
    return {
        "coords": cell.coords(),
        "label": cell.label,
        "key": key,
        "stages": list(stages),
        "run": run,
        "record": record.to_json(),
    }


def save_grid(
    out: Path,
    spec: GridSpec,
    cells: Sequence[Mapping[str, Any]],
    *,
    complete: bool,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a grid record (``out/grid.json``) atomically."""
    doc = {
        FORMAT_KEY: GRID_FORMAT,
        "complete": complete,
        "spec": spec.to_json(),
        **(extra or {}),
        "cells": list(cells),
    }
    path = Path(out) / GRID_FILE
    atomic_write(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return path


def is_grid(path: Path | str) -> bool:
    p = Path(path)
    return (p / GRID_FILE).is_file() if p.is_dir() else p.name == GRID_FILE or _has_grid_key(p)


def _has_grid_key(p: Path) -> bool:
    if not p.is_file() or p.suffix != ".json":
        return False
    with open(p, encoding="utf-8") as f:
        head = f.read(200)
    return FORMAT_KEY in head


def read_grid(path: Path | str) -> GridRecord:
    """Read a grid record from its folder or its ``grid.json``."""
    p = Path(path)
    file = p / GRID_FILE if p.is_dir() else p
    try:
        doc = jsonio.loads(file.read_bytes(), path=file)
    except FileNotFoundError:
        raise DataError("no grid record found", path=file, expected=f"a folder holding {GRID_FILE}") from None
    except OSError as e:
        raise DataError(f"cannot read the grid record ({e.strerror or e})", path=file) from None
    if not isinstance(doc, dict) or not isinstance(doc.get(FORMAT_KEY), int):
        raise DataError("not a molmo-eval grid record", path=file, field=FORMAT_KEY)
    if doc[FORMAT_KEY] > GRID_FORMAT:
        raise DataError(
            f"written by a newer molmo-eval (grid format {doc[FORMAT_KEY]})",
            path=file,
            field=FORMAT_KEY,
            expected=f"<= {GRID_FORMAT}",
        )
    try:
        spec = GridSpec.from_json(doc["spec"])
        cells = tuple(
            GridCell(
                c["coords"], c["label"], c["key"], file.parent / c["run"], RunRecord.from_json(c["record"])
            )
            for c in doc["cells"]
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"malformed grid record ({type(e).__name__}: {e})", path=file) from None
    return GridRecord(file, spec, cells, bool(doc.get("complete")), doc.get("plan", {}))

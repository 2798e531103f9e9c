"""What a report reads: run directories, their ``results.json`` and grid folders, each optionally
``LABEL=PATH`` -> `Inputs`, one `Entry` per run or grid cell. `SampleStore` reads each run's
``samples.jsonl`` (or ``samples.jsonl.gz``, for committed records) once and shares it between the
paired tests and the sample viewer. Records only (grid records through `molmo_eval.grid.record`);
never a model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError, DataError
from molmo_eval.grid.record import is_grid, read_grid
from molmo_eval.report.model import Entry, Inputs
from molmo_eval.run.records import check_counts, iter_samples, read_run, samples_path, verify_files


def load_inputs(paths: Sequence[str | Path]) -> Inputs:
    """Run directories / results.json files / grid folders, each optionally ``LABEL=PATH``."""
    entries: list[Entry] = []
    axes: tuple[str, ...] = ()
    values: dict[str, tuple[str, ...]] = {}
    n_grids = 0
    notes: list[str] = []
    for raw in paths:
        label, path = _split_label(str(raw))
        if not path.exists():
            raise DataError("no such run or grid", path=path)
        if is_grid(path):
            g = read_grid(path)
            n_grids += 1
            if not g.complete:
                notes.append(
                    f"The grid {label or path.name} is not complete: {len(g.cells)} of "
                    f"{len(g.spec.cells())} cells."
                )
            axes = g.spec.varying
            values = {a: tuple(g.spec.axis_values(a)) for a in axes}
            for c in g.cells:
                if c.run_dir.is_dir():  # the cell's folder must still be the run the grid recorded
                    verify_files(c.run_dir, c.record)
                coords = {a: c.coords[a] for a in axes}
                text = " ".join(f"{a}={v}" for a, v in coords.items())
                entries.append(Entry(f"{label}: {text}" if label else text, c.record, c.run_dir, coords))
        else:
            run = read_run(path)
            entries.append(Entry(label or _run_name(run.path), run.record, run.path))
    if not entries:
        raise ConfigError("report: give at least one run directory or grid folder")
    return Inputs(
        tuple(_unique(entries)), axes if n_grids == 1 else (), values if n_grids == 1 else {}, tuple(notes)
    )


def _split_label(text: str) -> tuple[str, Path]:
    if "=" in text and not Path(text).exists():
        label, _, path = text.partition("=")
        return label.strip(), Path(path).expanduser()
    return "", Path(text).expanduser()


def _run_name(path: Path) -> str:
    return path.resolve().name


def _unique(entries: list[Entry]) -> list[Entry]:
    seen: dict[str, int] = {}
    out = []
    for e in entries:
        seen[e.label] = seen.get(e.label, 0) + 1
        out.append(e if seen[e.label] == 1 else replace(e, label=f"{e.label} #{seen[e.label]}"))
    return out


def read_sample_lines(run_dir: Path) -> Iterator[dict[str, Any]]:
    """``samples.jsonl`` (or ``samples.jsonl.gz``, for committed records) of a run directory."""
    yield from iter_samples(run_dir)


def has_samples(run_dir: Path | None) -> bool:
    return run_dir is not None and samples_path(run_dir) is not None


class SampleStore:
    """Per-sample lines of each run, read once and shared by the tests and the viewer."""
    def __init__(self) -> None:
        self._lines: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def lines(self, entry: Entry, task: str) -> list[dict[str, Any]] | None:
        if not has_samples(entry.run_dir):
            return None
        key = entry.data_key
        if key not in self._lines:
            by_task: dict[str, list[dict[str, Any]]] = {}
            assert entry.run_dir is not None
            for line in read_sample_lines(entry.run_dir):
                by_task.setdefault(str(line.get("task")), []).append(line)
            check_counts(entry.record, {t: len(v) for t, v in by_task.items()},
                         samples_path(entry.run_dir) or entry.run_dir)
            self._lines[key] = by_task
        return self._lines[key].get(task)

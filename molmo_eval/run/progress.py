"""Progress display for long work: a rich bar on a terminal (samples/s, ETA, failures), plain
lines on a pipe or CI log (at most one every few seconds per task, plus start and end).
Shown only by the process whose ``enabled`` flag is set (rank 0 under torchrun).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    def __init__(self, enabled: bool = True, stream: TextIO | None = None, plain_every: float = 5.0):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.rich = enabled and self.stream.isatty()
        self.plain_every = plain_every
        self._bar: Any = None
        self._task_id: Any = None
        self._label = ""
        self._total = 0
        self._done = 0
        self._failed = 0
        self._t0 = 0.0
        self._last = 0.0

    def __enter__(self) -> Progress:
        if self.rich:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"), TextColumn("[red]{task.fields[failed]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(file=self.stream), transient=False,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._done, self._failed = label, total, 0, 0
        self._t0 = self._last = time.monotonic()
        if not self.enabled:
            return
        if self._bar is not None:
            self._task_id = self._bar.add_task(label, total=total, rate="", failed="")
        else:
            print(f"[molmo-eval] {label}: {total} samples", file=self.stream, flush=True)

    def advance(self, n: int, failed: int = 0, cached: int = 0) -> None:
        self._done += n
        self._failed += failed
        if not self.enabled:
            return
        now = time.monotonic()
        rate = self._done / max(now - self._t0, 1e-9)
        if self._bar is not None:
            self._bar.update(self._task_id, advance=n, rate=f"{rate:,.1f} samples/s",
                             failed=f"{self._failed} failed" if self._failed else "")
        elif now - self._last >= self.plain_every and self._done < self._total:
            self._last = now
            eta = (self._total - self._done) / rate if rate > 0 else float("inf")
            print(f"[molmo-eval] {self._label}: {self._done}/{self._total} ({rate:,.1f} samples/s, "
                  f"ETA {eta:,.0f}s, {self._failed} failed)", file=self.stream, flush=True)

    def finish(self, note: str = "") -> None:
        if not self.enabled:
            return
        secs = time.monotonic() - self._t0
        if self._bar is None:
            print(f"[molmo-eval] {self._label}: done, {self._done} samples in {secs:,.1f}s, "
                  f"{self._failed} failed{note}", file=self.stream, flush=True)

    def log(self, message: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(message)
        else:
            print(f"[molmo-eval] {message}", file=self.stream, flush=True)

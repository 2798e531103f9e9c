"""The per-sample log of a run, written as samples are scored, so a run's memory does not grow with
its ``samples.jsonl`` (DESIGN §7; docs/running.md states what a run of 100k samples needs).

A sample's line is known, but for its scores, as soon as it is scored; its final scores only when
its task is finalized (a task may add columns that depend on several samples, such as GQA's
consistency or MMBench's circular hits). So each task's lines wait in a `LineSpool` (an anonymous
temporary file) as two pieces of JSON text, before and after the place of ``scores`` and
``fields``; when the task is finalized, `SampleLog` joins each line with its final scores into the
run folder's staged ``samples.jsonl`` (`molmo_eval.run.records.StagedFile`) and keeps only the
task's score columns for ``scores.json``. The bytes are those `dumps` writes for the whole line:
JSON text never holds a raw newline or NUL, so the pieces are stored one line each, split by a NUL.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from molmo_eval.core.types import Answer, Generation, Sample, SampleScore
from molmo_eval.run.records import SAMPLES, SCORES, Staged, StagedFile, dumps, remove
from molmo_eval.run.rundir import writing
from molmo_eval.run.scores import TaskRows, scores_document, task_entry

Parts = tuple[str, str]  # a line's JSON text before and after "scores" and "fields"


def line_parts(sample: Sample, prompt: str, gen: Generation | None, answer: Answer | None, *,
               error: str | None, cached: bool) -> Parts:
    """A samples.jsonl line without its scores (`join_line` puts them in)."""
    head = {"uid": sample.uid, "task": sample.task, "split": sample.split, "id": sample.id, "prompt": prompt,
            "output": None if gen is None else gen.to_json(),
            "answer": None if answer is None else answer.to_json()}
    tail = {"meta": dict(sample.meta), "target": dict(sample.target), "prompt_fields": dict(sample.prompt_fields),
            "image_size": None if sample.image_size is None else list(sample.image_size),
            "error": error, "cached": cached}
    return dumps(head)[:-1], dumps(tail)[1:]


def score_values(score: SampleScore) -> dict[str, Any]:
    """A score's values as samples.jsonl holds them (NaN, "not applicable", as null)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in score.values.items()}


def join_line(parts: Parts, score: SampleScore) -> str:
    """The whole line: exactly ``dumps`` of the line with ``scores`` and ``fields`` in place, and a newline."""
    head, tail = parts
    return f'{head}, "scores": {dumps(score_values(score))}, "fields": {dumps(dict(score.fields))}, {tail}\n'


def full_line(sample: Sample, prompt: str, gen: Generation | None, answer: Answer | None, score: SampleScore,
              *, error: str | None, cached: bool) -> str:
    return join_line(line_parts(sample, prompt, gen, answer, error=error, cached=cached), score)


class LineSpool:
    """One task's line parts, in order, in an anonymous temporary file (gone when closed, or when the
    process dies)."""

    def __init__(self) -> None:
        with writing("a temporary file"):
            self._f = tempfile.TemporaryFile("w+b")
        self.n = 0

    def add(self, parts: Parts) -> None:
        with writing("a temporary file"):
            self._f.write(_encode(parts))
        self.n += 1

    def __iter__(self) -> Iterator[Parts]:
        self._f.flush()
        self._f.seek(0)
        for raw in self._f:
            head, tail = raw[:-1].decode("utf-8", "surrogatepass").split("\0", 1)
            yield head, tail

    def to_list(self) -> list[Parts]:
        """Every line's parts in memory (what a torchrun rank sends to rank 0); closes the spool."""
        out = list(self)
        self.close()
        return out

    def close(self) -> None:
        self._f.close()


def _encode(parts: Parts) -> bytes:
    return f"{parts[0]}\0{parts[1]}\n".encode("utf-8", "surrogatepass")


class SampleLog:
    """A run's ``samples.jsonl`` and ``scores.json``, staged in the run folder as its tasks finish
    (`molmo_eval.run.rundir.write_run` renames them into place with the record)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._samples: StagedFile | None = None  # opened with the first task that finishes
        self._entries: list[str] = []
        self.lines = 0

    def add_task(self, task: str, parts: Iterable[Parts], scores: Iterable[SampleScore], rows: TaskRows) -> None:
        """The task's lines (parts joined with their final scores, in order) and its score columns."""
        n = 0
        with writing(f"the run folder {self.run_dir}"):
            if self._samples is None:
                self._samples = StagedFile(self.run_dir / SAMPLES, count_lines=True)
            for p, sc in zip(parts, scores, strict=True):
                self._samples.write(join_line(p, sc))
                n += 1
        if n:
            self._entries.append(task_entry(task, rows))
        self.lines += n

    def finish(self) -> list[Staged]:
        """``samples.jsonl`` and ``scores.json`` staged (none when no task wrote a line)."""
        if self._samples is None:
            return []
        with writing(f"the run folder {self.run_dir}"):
            samples, self._samples = self._samples.close(), None
            try:
                scores = StagedFile(self.run_dir / SCORES)
                scores.write(scores_document(self._entries))
                return [samples, scores.close()]
            except BaseException:
                remove(samples.tmp)
                raise

    def discard(self) -> None:
        if self._samples is not None:
            self._samples.discard()
            self._samples = None

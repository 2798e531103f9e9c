"""The task contract: what every benchmark plugin provides (DESIGN §3, STYLE 2).

A task is a small frozen dataclass. Its only instance field is ``variant``; variants are made
with `Task.with_variant` (``dataclasses.replace``), never by copying the class. The runner calls,
per split::

    load(data_root, split) -> [Sample]           read the benchmark's official files
    prompt(sample, style, space) -> str          "default" or a family style ("molmo"); space: the
                                                 model's point space, for prompts that carry a point
    parse(sample, generation, ctx) -> Answer     pure; unparseable -> parse_ok=False
    score(sample, answer) -> SampleScore         pure, per sample
    score_batch(samples, answers) -> [SampleScore]   the same for many samples at once (optional)
    finalize(samples, scores) -> [SampleScore]   cross-sample columns (e.g. GQA consistency)
    metrics() -> (Metric, ...)                   aggregates over the score columns

and, before any of that, `limit_group` tells ``--limit`` which samples stand or fall together.

Tasks are registered through the ``molmo_eval.tasks`` entry-point group (see `registry`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from molmo_eval.core.errors import MolmoEvalError, UnknownName
from molmo_eval.core.metric import Metric
from molmo_eval.core.types import (
    Answer,
    AnswerKind,
    CoordSpace,
    Generation,
    GenerationSettings,
    Sample,
    SampleScore,
)


class ScoredColumns(NamedTuple):
    """Scores of a whole split as columns (`Task.score_prediction_columns`)."""

    cols: dict[str, Any]  # column -> one value per sample (numpy arrays, as `stats.columns` builds them)
    n_unparseable: int  # answers parsed with parse_ok False (scored as written)

@dataclass(frozen=True)
class ParseContext:
    """What a parser needs beyond the text: the model's declared point space and the image size."""

    space: CoordSpace = CoordSpace.PIXELS
    image_size: tuple[int, int] | None = None  # (W, H) of the original image


@dataclass(frozen=True)
class Task(ABC):
    # --- declared by each plugin -------------------------------------------------------------
    name: ClassVar[str]
    description: ClassVar[str]  # one line, shown by `molmo-eval tasks`
    splits: ClassVar[tuple[str, ...]]  # every split the loader can read
    default_splits: ClassVar[tuple[str, ...]]  # evaluated when --split is not given
    answer_kind: ClassVar[AnswerKind]
    primary_metric: ClassVar[str]
    data_dir: ClassVar[str]  # folder under --data-root holding this benchmark's files
    variants: ClassVar[tuple[str, ...]] = ("official",)
    breakdowns: ClassVar[tuple[str, ...]] = ()  # Sample.meta keys that metrics are grouped by
    version: ClassVar[str] = "1"  # bump when scoring changes numbers

    variant: str = "official"

    def with_variant(self, variant: str | None) -> Task:
        if variant is None or variant == self.variant:
            return self
        if variant not in self.variants:
            raise UnknownName(f"variant of task {self.name!r}", variant, self.variants)
        return dataclasses.replace(self, variant=variant)

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise UnknownName(f"split of task {self.name!r}", split, self.splits)
        return split

    # --- data -------------------------------------------------------------------------------
    @abstractmethod
    def load(self, data_dir: Path, split: str) -> list[Sample]:
        """Read the split from the benchmark's official files in ``data_dir`` (the task's own
        folder: ``--data-root``/`data_dir`, or a per-task override).

        Raises `DataError` naming file, record and field for missing or malformed input."""

    @abstractmethod
    def data_files(self, data_dir: Path, split: str) -> list[Path]:
        """The annotation files of a split (digested into the run record)."""

    def limit_group(self, sample: Sample) -> str:
        """The unit that ``--limit`` counts: samples that a metric scores together share a group and
        are kept or dropped together (MMBench: every circular rotation of a question). Default: each
        sample is its own group."""
        return sample.id

    # --- per sample -------------------------------------------------------------------------
    @abstractmethod
    def prompt(self, sample: Sample, style: str = "default", space: CoordSpace | None = None) -> str:
        """The text sent to the model. ``space`` is the model's declared coordinate space, for prompts
        that carry a point (Point-and-Ask); None means pixels."""

    def generation_settings(self) -> GenerationSettings:
        return GenerationSettings()

    @abstractmethod
    def parse(self, sample: Sample, generation: Generation, ctx: ParseContext) -> Answer: ...

    @abstractmethod
    def score(self, sample: Sample, answer: Answer) -> SampleScore: ...

    def score_batch(self, samples: Sequence[Sample], answers: Sequence[Answer]) -> list[SampleScore]:
        """``[score(s, a) for ...]``, which is what this returns unless a task computes the scores of
        many samples together (VQAv2 and TextVQA count the matches of a whole batch with numpy). The
        result must equal the per-sample scores; if it raises, each sample is scored alone."""
        return [self.score(s, a) for s, a in zip(samples, answers)]

    def failed_score(self, sample: Sample) -> SampleScore:
        """The score of a sample whose generation failed: the same as an unparseable answer."""
        return self.score(sample, Answer(self.answer_kind, None, parse_ok=False))

    # --- aggregate --------------------------------------------------------------------------
    @abstractmethod
    def metrics(self) -> tuple[Metric, ...]: ...

    def finalize(self, samples: Sequence[Sample], scores: Sequence[SampleScore]) -> list[SampleScore]:
        """Add columns that depend on several samples. Default: nothing to add."""
        return list(scores)

    def split_metrics(self) -> tuple[str, ...]:
        """Metrics that are only meaningful over several splits at once (e.g. POPE's mean over
        splits); they are left out of the per-split breakdown."""
        return ()

    # --- predictions written by other tools (`molmo-eval score --predictions`) ----------------
    def read_predictions(self, path: Path, samples: Sequence[Sample]) -> dict[str, Generation]:
        """Map sample uid -> Generation from the benchmark's usual results file format."""
        raise MolmoEvalError(f"task {self.name!r} cannot read prediction files yet")

    def prediction_space(self) -> CoordSpace:
        """The coordinate space of points and boxes in prediction files (pixels by convention)."""
        return CoordSpace.PIXELS

    def score_prediction_columns(self, data_dir: Path, split: str, path: Path) -> ScoredColumns | None:
        """Optional: the per-sample columns that `molmo_eval.metrics.stats.columns` would build from
        scoring the prediction file ``path`` against ``split`` sample by sample (`read_predictions`,
        `parse`, `score_batch`), computed column-wise without per-sample objects, for a scored file
        whose per-sample lines nobody reads (``score --predictions --json``). They must be equal to
        the per-sample path's; None (the default) whenever anything is unusual (a question without
        a prediction, an unknown id, a file of another shape): the per-sample path then scores the
        file, or names what is wrong with it."""
        return None

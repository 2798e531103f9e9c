"""Parse -> score -> aggregate for one task, shared by the runner, `molmo-eval score --run` (re-scoring
saved samples) and `molmo-eval score --predictions` (scoring files written by other tools).

Nothing here calls a model: it turns Generations into SampleScores and a TaskResult.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from molmo_eval.core.task import ParseContext, Task
from molmo_eval.core.types import (
    Answer,
    CoordSpace,
    Generation,
    GenerationSettings,
    Sample,
    SampleScore,
    TaskResult,
)
from molmo_eval.metrics import stats


def score_one(task: Task, sample: Sample, gen: Generation | None, space: CoordSpace,
              image_size: tuple[int, int] | None = None) -> tuple[Answer | None, SampleScore]:
    """Score one sample; a missing or failed generation scores as an unparseable answer."""
    if gen is None or gen.error is not None:
        return None, task.failed_score(sample)
    answer = task.parse(sample, gen, parse_context(space, image_size or sample.image_size))
    return answer, task.score(sample, answer)


def parse_context(space: CoordSpace, image_size: tuple[int, int] | None) -> ParseContext:
    """One (immutable) ParseContext per space and image size: most samples share one."""
    try:
        return _shared_context(space, image_size)
    except TypeError:  # a size that is not hashable (a list): a context of its own
        return ParseContext(space=space, image_size=image_size)


@lru_cache(maxsize=1024)
def _shared_context(space: CoordSpace, image_size: tuple[int, int] | None) -> ParseContext:
    return ParseContext(space=space, image_size=image_size)


class Summary(NamedTuple):
    result: TaskResult
    final: list[SampleScore]  # the scores with the columns finalize added
    cols: dict[str, np.ndarray]  # the per-sample columns the metrics were computed from


def summarize_task(task: Task, samples: Sequence[Sample], scores: Sequence[SampleScore], *, seed: int,
                   n_boot: int, n_failed: int, n_unparseable: int, digests: Mapping[str, str] | None = None,
                   seconds: float = 0.0, group_ci: bool = True) -> tuple[TaskResult, list[SampleScore]]:
    """Finalize cross-sample columns, aggregate with bootstrap CIs (of the breakdowns too, unless
    ``group_ci`` is False) and build the TaskResult; returns it and the finalized scores."""
    summary = summarize_columns(task, samples, scores, seed=seed, n_boot=n_boot, n_failed=n_failed,
                                n_unparseable=n_unparseable, digests=digests, seconds=seconds, group_ci=group_ci)
    return summary.result, summary.final


def summarize_columns(task: Task, samples: Sequence[Sample], scores: Sequence[SampleScore], *, seed: int,
                      n_boot: int, n_failed: int, n_unparseable: int, digests: Mapping[str, str] | None = None,
                      seconds: float = 0.0, group_ci: bool = True) -> Summary:
    """`summarize_task`, also returning the per-sample columns (the runner writes them to scores.json)."""
    final = task.finalize(samples, scores)
    cols = stats.columns(samples, final)
    splits = tuple(dict.fromkeys(s.split for s in samples))
    result = summarize_cols(task, cols, splits, seed=seed, n_boot=n_boot, n_failed=n_failed,
                            n_unparseable=n_unparseable, digests=digests, seconds=seconds, group_ci=group_ci)
    return Summary(result, final, cols)


def summarize_cols(task: Task, cols: Mapping[str, np.ndarray], splits: Sequence[str], *, seed: int, n_boot: int,
                   n_failed: int, n_unparseable: int, digests: Mapping[str, str] | None = None,
                   seconds: float = 0.0, group_ci: bool = True) -> TaskResult:
    """The TaskResult of per-sample columns (`stats.columns`, or a task's column-wise scoring,
    `Task.score_prediction_columns`)."""
    overall, groups = stats.summarize(task.metrics(), cols, task.breakdowns, seed=seed, label=task.name,
                                      n_boot=n_boot, split_only=task.split_metrics(), group_ci=group_ci)
    n = len(next(iter(cols.values()))) if cols else 0
    return TaskResult(
        task=task.name, splits=tuple(splits), variant=task.variant, version=task.version, n=n,
        metrics=overall, breakdowns=groups, n_failed=n_failed, n_unparseable=n_unparseable,
        primary_metric=task.primary_metric, data_digests=dict(digests or {}), seconds=seconds,
    )


def task_config(task: Task, splits: Sequence[str], settings: GenerationSettings | None, **extra: Any
                ) -> dict[str, Any]:
    """How a task was run, for the record's ``configs`` (lmms-eval's key: one entry per task with its
    generation kwargs, metric list and metadata version); ``extra`` adds run details (data_dir, limit...)."""
    out: dict[str, Any] = {"task": task.name, "variant": task.variant, "splits": list(splits),
                           "answer_kind": task.answer_kind.value, "primary_metric": task.primary_metric}
    if settings is not None:
        out["generation_kwargs"] = {"max_new_tokens": settings.max_new_tokens, "temperature": settings.temperature,
                                    "do_sample": settings.temperature > 0, "until": list(settings.stop)}
    out["metric_list"] = [{"metric": m.name, "higher_is_better": m.higher_is_better} for m in task.metrics()]
    out["metadata"] = {"version": task.version}
    return {**out, **extra}


def sample_line(sample: Sample, prompt: str, gen: Generation | None, answer: Answer | None,
                score: SampleScore, *, error: str | None, cached: bool) -> dict[str, Any]:
    return {
        "uid": sample.uid, "task": sample.task, "split": sample.split, "id": sample.id,
        "prompt": prompt,
        "output": None if gen is None else gen.to_json(),
        "answer": None if answer is None else answer.to_json(),
        "scores": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in score.values.items()},
        "fields": dict(score.fields), "meta": dict(sample.meta), "target": dict(sample.target),
        "prompt_fields": dict(sample.prompt_fields),
        "image_size": None if sample.image_size is None else list(sample.image_size),
        "error": error, "cached": cached,
    }


def sample_from_line(line: Mapping[str, Any]) -> Sample:
    """Rebuild a Sample (without its image) from a samples.jsonl line, for re-scoring."""
    size = line.get("image_size")
    return Sample(id=str(line["id"]), task=line["task"], split=line["split"], image=None,
                  prompt_fields=line.get("prompt_fields") or {}, target=line.get("target") or {},
                  meta=line.get("meta") or {}, image_size=None if size is None else (int(size[0]), int(size[1])))

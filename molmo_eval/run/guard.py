"""The per-sample guard: a model's output is untrusted input (DESIGN §9).

Generation, parsing and scoring of one sample run inside the same guard. Whatever goes wrong there
- a model call that raises after its retries, a parser or scorer that raises on what the model
wrote, a scorer that returns something other than numbers - marks that sample failed, with the
reason (`describe`: stage, exception type and message, bounded in length) in ``samples.jsonl``; it
scores as a wrong answer and the run goes on. Only a `MolmoEvalError` from the model itself (a
configuration problem that would fail every sample alike) stops the run.

`generate_safe` is used by the runner and the server; `score_sample` (one sample) and `score_samples`
(many, scored together by `Task.score_batch`) by the runner, ``molmo-eval score`` and the lmms-eval
hooks.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

from molmo_eval.core.errors import MolmoEvalError
from molmo_eval.core.model import Model
from molmo_eval.core.task import Task
from molmo_eval.core.types import Answer, CoordSpace, Generation, Request, Sample, SampleScore
from molmo_eval.run.scoring import parse_context, score_one

MAX_ERROR_CHARS = 500  # an exception may quote the whole output; samples.jsonl keeps the reason short


def describe(stage: str, e: BaseException) -> str:
    """``"<stage>: <Type>: <message>"``, cut to `MAX_ERROR_CHARS`."""
    try:
        message = str(e)
    except Exception:  # a hostile __str__
        message = "(the message could not be read)"
    text = f"{stage}: {type(e).__name__}: {message}" if stage else f"{type(e).__name__}: {message}"
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "…"


def generate_safe(model: Model, reqs: Sequence[Request]) -> list[Generation]:
    """Batch generation; if the batch raises, retry sample by sample so one bad sample fails alone."""
    try:
        gens = model.generate(reqs)
        if len(gens) != len(reqs):
            raise RuntimeError(f"model returned {len(gens)} generations for {len(reqs)} requests")
        return [plain(g) for g in gens]
    except MolmoEvalError:
        raise
    except Exception as e:
        if len(reqs) == 1:
            return [Generation(text="", error=describe("", e))]
        return [generate_safe(model, [r])[0] for r in reqs]


def plain(g: object) -> Generation:
    """A model's Generation as plain values the cache and samples.jsonl can hold: text a str, points
    pairs and a box four floats, error a str; anything else raises (and fails that sample)."""
    if not isinstance(g, Generation) or not isinstance(g.text, str):
        raise TypeError(f"model returned {type(g).__name__} where a Generation with text belongs")
    points = None if g.points is None else tuple(_floats(p, 2, "point") for p in g.points)
    box = None if g.box is None else _floats(g.box, 4, "box")
    error = None if g.error is None else str(g.error)
    if points is None and box is None and (error is None or type(g.error) is str):
        return g  # the common case: text only
    return replace(g, points=points, box=box, error=error)  # type: ignore[arg-type]


def _floats(values: object, n: int, what: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)  # type: ignore[attr-defined]
    if len(out) != n:
        raise ValueError(f"model returned a {what} of {len(out)} numbers")
    return out


class Scored(NamedTuple):
    """One sample's parsed answer and score; ``error`` says why the sample failed (None: it did not)."""

    answer: Answer | None
    score: SampleScore
    error: str | None = None


def score_sample(task: Task, sample: Sample, gen: Generation | None, space: CoordSpace,
                 image_size: tuple[int, int] | None = None) -> Scored:
    """Parse and score one sample; a failed generation, or a parser or scorer that fails on this
    output, gives the failed score (that of an unparseable answer) and the reason."""
    if gen is None or gen.error is not None:
        return Scored(None, _failed_score(task, sample), None if gen is None else gen.error)
    try:
        answer, score = score_one(task, sample, gen, space, image_size)
        _check_values(score)
        return Scored(answer, score)
    except Exception as e:
        return Scored(None, _failed_score(task, sample), describe("scoring", e))


def score_samples(task: Task, samples: Sequence[Sample], gens: Sequence[Generation | None], space: CoordSpace,
                  sizes: Sequence[tuple[int, int] | None] | None = None) -> list[Scored]:
    """`score_sample` of each sample, with the scores computed together by `Task.score_batch`: each
    sample is parsed under the guard, the parsed ones scored in one call; should that call raise,
    they are scored one by one, so a sample that makes its scorer fail fails alone, as always."""
    out: list[Scored | None] = [None] * len(samples)
    todo: list[int] = []
    answers: list[Answer] = []
    parse = task.parse
    for i, (sample, gen) in enumerate(zip(samples, gens)):
        if gen is None or gen.error is not None:
            out[i] = Scored(None, _failed_score(task, sample), None if gen is None else gen.error)
            continue
        size = sizes[i] if sizes is not None else None
        try:
            answers.append(parse(sample, gen, parse_context(space, size or sample.image_size)))
        except Exception as e:
            out[i] = Scored(None, _failed_score(task, sample), describe("scoring", e))
            continue
        todo.append(i)
    if todo:
        batch = [samples[i] for i in todo]
        try:
            scores: list[SampleScore | Scored] = list(task.score_batch(batch, answers))
            if len(scores) != len(todo):
                raise ValueError(f"score_batch returned {len(scores)} scores for {len(todo)} samples")
        except Exception:  # one by one: the sample that raises fails alone
            scores = [_score_alone(task, s, a) for s, a in zip(batch, answers)]
        for i, answer, score in zip(todo, answers, scores):
            out[i] = score if isinstance(score, Scored) else _checked(task, samples[i], answer, score)
    return out  # type: ignore[return-value]


def _checked(task: Task, sample: Sample, answer: Answer, score: SampleScore) -> Scored:
    try:
        _check_values(score)
    except Exception as e:
        return Scored(None, _failed_score(task, sample), describe("scoring", e))
    return Scored(answer, score)


def _score_alone(task: Task, sample: Sample, answer: Answer) -> SampleScore | Scored:
    try:
        return task.score(sample, answer)
    except Exception as e:
        return Scored(None, _failed_score(task, sample), describe("scoring", e))


def _check_values(score: SampleScore) -> None:
    for k, v in score.values.items():
        if type(v) is not float and (isinstance(v, bool) or not isinstance(v, numbers.Real)):
            raise TypeError(f"score column {k!r} holds {type(v).__name__}, not a number")


def _failed_score(task: Task, sample: Sample) -> SampleScore:
    try:
        return task.failed_score(sample)
    except Exception as e:  # a plugin that cannot score a failure cannot score this run
        raise MolmoEvalError(f"task {task.name!r} cannot score sample {sample.uid} as failed "
                             f"({describe('', e)})") from e

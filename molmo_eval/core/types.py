"""Plain typed values that flow through the pipeline (DESIGN §3).

    Task.load ─Sample─► Task.prompt ─Request─► Model.generate ─Generation─► Task.parse ─Answer─►
    Task.score ─SampleScore─► aggregate ─TaskResult─► RunRecord

Everything here is a frozen dataclass and this module imports nothing of ours. Mapping-typed
fields hold plain dicts by convention: treat them as read-only.

Coordinates: every point inside the harness is ``(x, y)`` in pixels of the original image,
origin top-left; every box is ``(x1, y1, x2, y2)`` in pixels (DESIGN §4).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

SCHEMA_VERSION = 2  # 2: the record lists the digests of its run folder's other files (`RunRecord.files`);
# "versions" holds task versions (lmms-eval's key), library versions moved to "package_versions";
# "configs", "higher_is_better", "n-shot", "n-samples" {original, effective} and "world_size" added

Point = tuple[float, float]
Box = tuple[float, float, float, float]


def _fill(obj: object, **values: Any) -> None:
    """The ``__init__`` of the values made by the hundred thousand (samples, generations, scores): the
    instance dict in one step, where the ``__init__`` dataclasses writes for a frozen class calls
    ``object.__setattr__`` once per field (3-4x slower). They stay frozen: assignment still raises."""
    obj.__dict__.update(values)


class CoordSpace(str, enum.Enum):
    """The space in which a model writes point coordinates; converts to pixels, never guessed."""

    PIXELS = "pixels"  # pixels of the original image
    NORMALIZED = "normalized"  # 0-1 of width / height
    PERCENT = "percent"  # 0-100, Molmo's <point x="45.5" y="67.0">
    THOUSAND = "thousand"  # 0-1000, Qwen-style
    BINS = "bins"  # reference model: <point> <x_k> <y_k>, k in 0..99, decoded to bin centres

    def to_pixels(self, x: float, y: float, size: tuple[int, int] | None) -> Point:
        """Convert one point written in this space to pixels of an image of ``size=(W, H)``."""
        if self is CoordSpace.PIXELS:
            return (float(x), float(y))
        if size is None:
            raise ValueError(f"converting {self.value} coordinates needs the image size")
        w, h = size
        if self is CoordSpace.NORMALIZED:
            return (x * w, y * h)
        if self is CoordSpace.PERCENT:
            return (x / 100.0 * w, y / 100.0 * h)
        if self is CoordSpace.THOUSAND:
            return (x / 1000.0 * w, y / 1000.0 * h)
        return ((x + 0.5) / 100.0 * w, (y + 0.5) / 100.0 * h)  # BINS: bin centre

    def from_pixels(self, x: float, y: float, size: tuple[int, int] | None) -> Point:
        """Inverse of `to_pixels` (for BINS: the bin index that holds the point, clipped to 0..99)."""
        if self is CoordSpace.PIXELS:
            return (float(x), float(y))
        if size is None:
            raise ValueError(f"converting to {self.value} coordinates needs the image size")
        w, h = size
        if self is CoordSpace.NORMALIZED:
            return (x / w, y / h)
        if self is CoordSpace.PERCENT:
            return (100.0 * x / w, 100.0 * y / h)
        if self is CoordSpace.THOUSAND:
            return (1000.0 * x / w, 1000.0 * y / h)
        return (float(min(99, max(0, math.floor(100 * x / w)))),
                float(min(99, max(0, math.floor(100 * y / h)))))


class AnswerKind(str, enum.Enum):
    """What a task expects back; also a hint to models about the answer's form."""

    TEXT = "text"  # short free-form answer (VQA, GQA, TextVQA)
    YESNO = "yesno"  # POPE
    CHOICE = "choice"  # a letter among options (MMBench)
    POINTS = "points"  # zero or more points (PointQA, RefCOCO pointing)
    BOX = "box"  # one box (RefCOCO boxes)
    COUNT = "count"  # a number (counting questions)


@dataclass(frozen=True)
class ImageRef:
    """Where a sample's image lives; opened only when its batch is prepared.

    Exactly one of ``path`` (absolute, already confined to the data root by the loader),
    ``data`` (encoded bytes) or ``b64`` (base64 text, as in MMBench TSVs) is set.
    """

    path: str | None = None
    data: bytes | None = None
    b64: str | None = None

    def __init__(self, path: str | None = None, data: bytes | None = None, b64: str | None = None) -> None:
        assert (path is not None) + (data is not None) + (b64 is not None) == 1, (path, data, b64)
        _fill(self, path=path, data=data, b64=b64)

    def describe(self) -> str:
        if self.path is not None:
            return self.path
        return "<inline image bytes>" if self.data is not None else "<inline base64 image>"


@dataclass(frozen=True, eq=False)
class Image:
    """A loaded image: encoded bytes, their digest, size, and decoded pixels when a model needs them."""

    digest: str  # blake2b of the encoded bytes
    size: tuple[int, int]  # (W, H)
    data: bytes
    pixels: np.ndarray | None = None  # (H, W, 3) uint8 RGB


@dataclass(frozen=True)
class Sample:
    """One benchmark question. ``id`` is the benchmark's own id, unique within (task, split)."""

    id: str
    task: str
    split: str
    image: ImageRef | None
    prompt_fields: Mapping[str, Any]  # e.g. {"question": ...}
    target: Mapping[str, Any]  # answers, boxes, masks, choices, label ...
    meta: Mapping[str, Any] = field(default_factory=dict)  # breakdown keys (answer_type, category...)
    image_size: tuple[int, int] | None = None  # (W, H) when the annotation file states it

    def __init__(self, id: str, task: str, split: str, image: ImageRef | None, prompt_fields: Mapping[str, Any],
                 target: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
                 image_size: tuple[int, int] | None = None) -> None:
        _fill(self, id=id, task=task, split=split, image=image, prompt_fields=prompt_fields, target=target,
              meta={} if meta is None else meta, image_size=image_size)

    @property
    def uid(self) -> str:
        return f"{self.task}/{self.split}/{self.id}"


def uids_of(samples: Sequence[Sample]) -> list[str]:
    """``[s.uid for s in samples]``, for samples of one split (the usual case) without a property
    call and a formatted string per sample."""
    ids = list(map(_ID_OF, samples))
    places = set(zip(map(_TASK_OF, samples), map(_SPLIT_OF, samples)))
    if len(places) != 1 or set(map(type, ids)) != {str} or set(map(type, next(iter(places)))) != {str}:
        return [s.uid for s in samples]
    return list(map("{}/{}/".format(*places.pop()).__add__, ids))


_ID_OF, _TASK_OF, _SPLIT_OF = attrgetter("id"), attrgetter("task"), attrgetter("split")


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 64
    temperature: float = 0.0  # greedy by default: evaluations must be reproducible
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Request:
    """What a model sees for one sample."""

    uid: str
    prompt: str
    images: tuple[Image, ...]
    settings: GenerationSettings
    answer_kind: AnswerKind
    sample_id: str = ""
    task: str = ""


@dataclass(frozen=True)
class Generation:
    """What a model wrote. ``points`` are native structured points in the model's coordinate
    space (for backends that return them); ``error`` marks a per-sample failure (after retries)."""

    text: str
    points: tuple[Point, ...] | None = None
    box: Box | None = None
    error: str | None = None

    def __init__(self, text: str, points: tuple[Point, ...] | None = None, box: Box | None = None,
                 error: str | None = None) -> None:
        _fill(self, text=text, points=points, box=box, error=error)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text}
        if self.points is not None:
            out["points"] = [list(p) for p in self.points]
        if self.box is not None:
            out["box"] = list(self.box)
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Generation:
        pts = d.get("points")
        box = d.get("box")
        return cls(
            text=d.get("text", ""),  # samples.jsonl stores NaN as null: read it back as NaN (never a crash)
            points=None if pts is None else tuple((_unnum(x), _unnum(y)) for x, y in pts),
            box=None if box is None else tuple(_unnum(v) for v in box),  # type: ignore[arg-type]
            error=d.get("error"),
        )


@dataclass(frozen=True)
class Answer:
    """A parsed, typed answer. Unparseable outputs have ``parse_ok=False`` and score as wrong."""

    kind: AnswerKind
    value: Any  # str | bool | choice letter | tuple[Point, ...] | Box | int | None
    parse_ok: bool = True

    def to_json(self) -> dict[str, Any]:
        v = self.value
        if isinstance(v, tuple):
            v = [list(p) if isinstance(p, tuple) else p for p in v]
        return {"kind": self.kind.value, "value": v, "parse_ok": self.parse_ok}


@dataclass(frozen=True)
class SampleScore:
    """Per-sample numbers, the unit of confidence intervals and paired tests.

    ``values`` holds floats; NaN means "not applicable to this sample" (e.g. ``binary`` for an
    open GQA question). ``fields`` holds categorical extras some aggregates need (a prediction
    string for GQA's distribution metric, a circular group id for MMBench).
    """

    uid: str
    values: Mapping[str, float]
    fields: Mapping[str, str] = field(default_factory=dict)

    def __init__(self, uid: str, values: Mapping[str, float], fields: Mapping[str, str] | None = None) -> None:
        _fill(self, uid=uid, values=values, fields={} if fields is None else fields)


@dataclass(frozen=True)
class MetricValue:
    value: float  # a fraction in [0, 1] for rates; reports render percentages
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"value": _num(self.value), "ci_low": _num(self.ci_low),
                "ci_high": _num(self.ci_high), "n": self.n}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MetricValue:
        lo, hi = d.get("ci_low"), d.get("ci_high")
        return cls(_unnum(d["value"]), None if lo is None else float(lo),
                   None if hi is None else float(hi), int(d.get("n", 0)))


@dataclass(frozen=True)
class TaskResult:
    task: str
    splits: tuple[str, ...]
    variant: str
    version: str
    n: int
    metrics: Mapping[str, MetricValue]
    breakdowns: Mapping[str, Mapping[str, Mapping[str, MetricValue]]]  # group -> key -> metric
    n_failed: int = 0
    n_unparseable: int = 0
    primary_metric: str = ""
    data_digests: Mapping[str, str] = field(default_factory=dict)  # file name -> sha256
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task, "splits": list(self.splits), "variant": self.variant,
            "version": self.version, "n": self.n, "primary_metric": self.primary_metric,
            "metrics": {k: v.to_json() for k, v in self.metrics.items()},
            "breakdowns": {g: {k: {m: v.to_json() for m, v in ms.items()} for k, ms in keys.items()}
                           for g, keys in self.breakdowns.items()},
            "n_failed": self.n_failed, "n_unparseable": self.n_unparseable,
            "data_digests": dict(self.data_digests), "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TaskResult:
        return cls(
            task=d["task"], splits=tuple(d["splits"]), variant=d["variant"], version=d["version"],
            n=int(d["n"]), primary_metric=d.get("primary_metric", ""),
            metrics={k: MetricValue.from_json(v) for k, v in d["metrics"].items()},
            breakdowns={g: {k: {m: MetricValue.from_json(v) for m, v in ms.items()}
                            for k, ms in keys.items()} for g, keys in d["breakdowns"].items()},
            n_failed=int(d.get("n_failed", 0)), n_unparseable=int(d.get("n_unparseable", 0)),
            data_digests=dict(d.get("data_digests", {})), seconds=float(d.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class ModelInfo:
    name: str
    fingerprint: str
    coord_space: str
    args: Mapping[str, str] = field(default_factory=dict)  # secrets never stored here


@dataclass(frozen=True)
class RunRecord:
    """The versioned record of one run (`results.json`). Reports, gates and re-scoring read only this
    and `samples.jsonl`; they never re-run a model.

    Beside molmo-eval's own fields, ``to_json`` writes the keys lmms-eval readers look for: ``results``,
    ``versions`` (task -> task version), ``higher_is_better`` (task -> metric -> true/false/null),
    ``configs`` (task -> how it was run: variant, splits, generation settings, metric list), ``n-shot``
    (0: every task is zero-shot) and ``n-samples`` (task -> ``{"original": samples in its splits,
    "effective": samples scored}``)."""

    run_id: str
    created: str  # ISO 8601, UTC
    status: str  # "ok" | "partial" (samples failed beyond --max-failures) | "failed" (a task failed)
    config: Mapping[str, Any]
    packages: Mapping[str, str]  # molmo_eval, python, numpy, torch ... versions ("package_versions")
    model: ModelInfo
    tasks: Mapping[str, TaskResult]
    timings: Mapping[str, float] = field(default_factory=dict)
    n_failed: int = 0
    errors: tuple[str, ...] = ()  # task-level failures, one line each
    counts: Mapping[str, int] = field(default_factory=dict)  # model_calls, cache_hits, samples
    task_configs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # "configs"
    n_original: Mapping[str, int] = field(default_factory=dict)  # task -> samples before --limit
    world_size: int = 1  # processes that evaluated (torchrun)
    schema_version: int = SCHEMA_VERSION
    # the run folder's other files: name -> {"sha256", "bytes"(, "lines")}; empty until written
    files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def higher_is_better(self) -> dict[str, dict[str, bool | None]]:
        """lmms-eval's ``higher_is_better`` from the recorded metric lists (null: no better direction)."""
        return {t: {m["metric"]: m.get("higher_is_better") for m in c.get("metric_list", ())}
                for t, c in self.task_configs.items()}

    def results_block(self) -> dict[str, dict[str, Any]]:
        """lmms-eval style ``results``: ``{task: {"<metric>,<filter>": v, "<metric>_stderr,<filter>": s}}``.

        The filter is ``none`` as in lmms-eval's default pipeline; the stderr slot holds the
        half-width of the bootstrap CI divided by 1.96, so tools that read it get a comparable number.
        """
        out: dict[str, dict[str, Any]] = {}
        for name, tr in self.tasks.items():
            block: dict[str, Any] = {"alias": name}
            for m, mv in tr.metrics.items():
                block[f"{m},none"] = _num(mv.value)
                if mv.ci_low is not None and mv.ci_high is not None:
                    block[f"{m}_stderr,none"] = _num((mv.ci_high - mv.ci_low) / (2 * 1.96))
                else:
                    block[f"{m}_stderr,none"] = "N/A"
            out[name] = block
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "run_id": self.run_id, "created": self.created,
            "status": self.status, "config": dict(self.config), "world_size": self.world_size,
            "versions": {k: v.version for k, v in self.tasks.items()}, "package_versions": dict(self.packages),
            "model": {"name": self.model.name, "fingerprint": self.model.fingerprint,
                      "coord_space": self.model.coord_space, "args": dict(self.model.args)},
            "tasks": {k: v.to_json() for k, v in self.tasks.items()},
            "results": self.results_block(),
            "higher_is_better": self.higher_is_better(),
            "n-shot": {k: 0 for k in self.tasks},  # every task is zero-shot
            "configs": {k: dict(v) for k, v in self.task_configs.items()},
            "n-samples": {k: {"original": self.n_original.get(k, v.n), "effective": v.n}
                          for k, v in self.tasks.items()},
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "n_failed": self.n_failed, "errors": list(self.errors), "counts": dict(self.counts),
            "files": {k: dict(v) for k, v in self.files.items()},
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunRecord:
        m = d["model"]
        schema = int(d["schema_version"])
        samples = d.get("n-samples", {})
        return cls(
            schema_version=schema, run_id=d["run_id"], created=d["created"],
            status=d["status"], config=d.get("config", {}),
            packages=_packages(d, schema),
            model=ModelInfo(m["name"], m["fingerprint"], m["coord_space"], m.get("args", {})),
            tasks={k: TaskResult.from_json(v) for k, v in d["tasks"].items()},
            timings=d.get("timings", {}), n_failed=int(d.get("n_failed", 0)),
            errors=tuple(d.get("errors", ())), counts=dict(d.get("counts", {})),
            task_configs=d.get("configs", {}),
            n_original={k: int(v["original"]) for k, v in samples.items() if "original" in v},
            world_size=int(d.get("world_size", 1)),
            files={str(k): dict(v) for k, v in (d.get("files") or {}).items()},
        )


def _packages(d: Mapping[str, Any], schema: int) -> Mapping[str, str]:
    """Library versions: ``versions`` in schema 1 (and in schema-2 records written before lmms-eval's
    keys, which kept task versions in ``versions_tasks``), ``package_versions`` since."""
    if schema < 2 or ("package_versions" not in d and "versions_tasks" in d):
        return d.get("versions", {})
    return d.get("package_versions", {})


def _num(v: float | None) -> float | None:
    """JSON has no NaN: store it as null."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


def _unnum(v: Any) -> float:
    return float("nan") if v is None else float(v)

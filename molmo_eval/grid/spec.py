"""The grid spec: the axes of an ablation (stages x data size x pointing x captions [x seed]) with the
settings shared by every cell, parsed and validated (every problem at once) from ``--grid`` flags, a TOML file
and other flags; `GridSpec.cells` is their cross product.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError, DataError

AXES = ("stages", "data", "pointing", "captions", "seed")
POINTING = ("off", "on", "only")  # no point tokens / the recipe / stage 3 on pointing data alone
DEFAULTS = {"pointing": "on", "captions": "clean"}  # the recipe's values (an axis not given)
AXIS_ALIASES = {
    "stage": "stages",
    "stages": "stages",
    "data": "data",
    "data_size": "data",
    "size": "data",
    "fraction": "data",
    "pointing": "pointing",
    "point": "pointing",
    "seed": "seed",
    "seeds": "seed",
    "captions": "captions",
    "caption": "captions",
    "quality": "captions",
}


@dataclass(frozen=True)
class DataSize:
    """A data-size setting: a fraction of the preset's full schedule (``0.25``, ``25%``, ``2`` for
    twice the schedule) or a number of training images over all stages, written with ``img``
    (``5600img``)."""

    fraction: float | None = None
    count: int | None = None

    @classmethod
    def parse(cls, text: str | float | int) -> DataSize:
        s = str(text).strip().lower()
        try:
            if s.endswith("img"):
                n = int(s[:-3].strip())
                if n < 1:
                    raise ValueError
                return cls(count=n)
            v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
        except ValueError:
            raise ConfigError(
                f"--grid data={text}: expected a fraction of the schedule (0.25, 25%) or an image "
                f"count (5600img)"
            ) from None
        if not (0 < v <= 10) or math.isnan(v):
            raise ConfigError(f"--grid data={text}: a fraction must be in (0, 10]")
        return cls(fraction=v)

    def resolve(self, full_images: int) -> float:
        return self.fraction if self.fraction is not None else (self.count or 0) / full_images

    @property
    def text(self) -> str:
        return f"{self.count}img" if self.count is not None else f"{self.fraction:g}"


def parse_stages(text: str | int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(text, (list, tuple)):
        stages = tuple(int(s) for s in text)
    else:
        try:
            stages = tuple(int(s) for s in str(text).replace(",", "+").split("+"))
        except ValueError:
            stages = ()
    if not stages or any(s not in (1, 2, 3) for s in stages) or list(stages) != sorted(set(stages)):
        raise ConfigError(
            f"--grid stages={text}: expected increasing stages from 1, 2, 3 joined by '+' (1+2+3)"
        )
    return stages


def parse_pointing(text: str | bool) -> str:
    """``off`` (no point tokens: referring answers in plain text), ``on`` (the recipe) or ``only``
    (stage 3 on pointing data alone); yes/no spellings of on/off too."""
    if isinstance(text, bool):
        return "on" if text else "off"
    s = str(text).strip().lower()
    if s in ("on", "yes", "true", "1"):
        return "on"
    if s in ("off", "no", "false", "0"):
        return "off"
    if s == "only":
        return "only"
    raise ConfigError(f"--grid pointing={text}: expected off, on or only")


NOISY_SCALE = 10  # `noisy` alone means noisy x10


def parse_captions(text: str) -> str:
    """Stage-1 captions: ``clean`` (the recipe's dense, correct captions, one pass over the stage's
    images) or ``noisy×K`` (short, partly wrong web-style captions on K times as many images, one
    pass each, so stage 1 runs K times the steps; ``noisy`` is ``noisy×10``, and ``x``/``*`` may
    stand for ``×``). Canonical forms: ``clean``, ``noisy×K``."""
    s = str(text).strip().lower().replace(" ", "")
    if s == "clean":
        return "clean"
    if s.startswith("noisy"):
        k = s[5:].lstrip("×x*")
        try:
            n = int(k) if k else NOISY_SCALE
        except ValueError:
            n = 0
        if 1 <= n <= 100:
            return f"noisy×{n}"
    raise ConfigError(f"--grid captions={text}: expected clean or noisy×K (K from 1 to 100; noisy: ×10)")


def noisy_scale(captions: str) -> int:
    """K of ``noisy×K`` (0 for clean captions)."""
    return int(captions.split("×")[1]) if captions.startswith("noisy") else 0


def stages_text(stages: Sequence[int]) -> str:
    return "+".join(map(str, stages))


@dataclass(frozen=True)
class GridSpec:
    stages: tuple[tuple[int, ...], ...] = ((1,), (1, 2), (1, 2, 3))
    data: tuple[DataSize, ...] = (DataSize(1.0),)
    pointing: tuple[str, ...] = ("on",)
    captions: tuple[str, ...] = ("clean",)
    seed: tuple[int, ...] = (0,)
    tasks: tuple[str, ...] = ()
    preset: str = "small"
    limit: int | None = None  # evaluation samples per split (None: all)
    bench: bool = True  # benchmark-format training examples in stages 2 and 3 (as `molmo-eval train`)
    bench_size: str = "small"
    threads: int = 1  # torch threads of every job: fixed, so numbers do not depend on the executor
    batch_size: int = 16  # evaluation batch size
    bootstrap: int = 1000
    data_root: str | None = None  # evaluation data (None: the embedded mini world)
    eval_seed: int = 0

    def cells(self) -> list[Cell]:
        return [
            Cell(st, d, p, s, c)
            for st in self.stages
            for d in self.data
            for p in self.pointing
            for c in self.captions
            for s in self.seed
        ]

    def axis_values(self, axis: str) -> list[str]:
        vals = {
            "stages": [stages_text(s) for s in self.stages],
            "data": [d.text for d in self.data],
            "pointing": list(self.pointing),
            "captions": list(self.captions),
            "seed": [str(s) for s in self.seed],
        }
        return vals[axis]

    @property
    def varying(self) -> tuple[str, ...]:
        """The axes shown in tables: stages, data and pointing always, captions and seed when they vary."""
        return tuple(a for a in AXES if a not in ("seed", "captions") or len(getattr(self, a)) > 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "stages": [stages_text(s) for s in self.stages],
            "data": [d.text for d in self.data],
            "pointing": list(self.pointing),
            "captions": list(self.captions),
            "seed": list(self.seed),
            **{
                f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)
                if f.name not in AXES
            },
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GridSpec:
        return build_spec({a: d[a] for a in AXES if a in d}, {k: v for k, v in d.items() if k not in AXES})


@dataclass(frozen=True)
class Cell:
    stages: tuple[int, ...]
    data: DataSize
    pointing: str  # off, on, only
    seed: int = 0
    captions: str = "clean"  # clean, noisy×K

    def coords(self) -> dict[str, str]:
        return {
            "stages": stages_text(self.stages),
            "data": self.data.text,
            "pointing": self.pointing,
            "captions": self.captions,
            "seed": str(self.seed),
        }

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.coords().items())

    @property
    def slug(self) -> str:
        c = self.coords()
        cap = "" if self.captions == "clean" else f"_c{c['captions'].replace('×', 'x')}"
        return f"s{c['stages']}_d{c['data']}_p{c['pointing']}{cap}_seed{c['seed']}"


_SETTINGS = {f.name: f for f in fields(GridSpec) if f.name not in AXES}


def build_spec(axes: Mapping[str, Any], settings: Mapping[str, Any]) -> GridSpec:
    """Validate axis values and settings (all problems at once) into a GridSpec."""
    problems: list[str] = []
    kw: dict[str, Any] = {}
    parsers: dict[str, Callable[[Any], Any]] = {
        "stages": parse_stages,
        "data": DataSize.parse,
        "pointing": parse_pointing,
        "captions": parse_captions,
        "seed": _parse_seed,
    }
    for raw, values in axes.items():
        axis = AXIS_ALIASES.get(str(raw).strip().lower())
        if axis is None:
            problems.append(f"--grid {raw}=...: unknown axis (expected one of {', '.join(AXES)})")
            continue
        vals = (
            values if isinstance(values, (list, tuple)) else [v for v in str(values).split(",") if v.strip()]
        )
        if not vals:
            problems.append(f"--grid {raw}=: give at least one value")
            continue
        parsed = []
        for v in vals:
            try:
                parsed.append(parsers[axis](v.strip() if isinstance(v, str) else v))
            except ConfigError as e:
                problems += e.problems
        if len(set(parsed)) != len(parsed):
            problems.append(f"--grid {axis}: a value is given twice")
        kw[axis] = tuple(parsed)
    for key, value in settings.items():
        if key not in _SETTINGS:
            problems.append(f"unknown grid setting {key!r} (expected one of {', '.join(sorted(_SETTINGS))})")
            continue
        kw[key] = value
    kw["tasks"] = (
        tuple(t.strip() for t in (kw.get("tasks") or ()) if t and t.strip())
        if not isinstance(kw.get("tasks"), str)
        else tuple(t.strip() for t in kw["tasks"].split(",") if t.strip())
    )
    if not kw["tasks"]:
        problems.append("--tasks: give the tasks every cell is evaluated on")
    for key in ("threads", "batch_size"):
        if key in kw and (not isinstance(kw[key], int) or kw[key] < 1):
            problems.append(f"{key}: expected a positive integer, got {kw[key]!r}")
    for key in ("limit", "bootstrap"):
        if kw.get(key) is not None and (not isinstance(kw[key], int) or kw[key] < 0):
            problems.append(f"{key}: expected a non-negative integer, got {kw[key]!r}")
    if problems:
        raise ConfigError(problems)
    return GridSpec(**kw)


def _parse_seed(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ConfigError(f"--grid seed={v}: expected an integer") from None


def parse_grid_flags(flags: Sequence[str]) -> dict[str, str]:
    """``["stages=1,1+2", "data=0.5,1"]`` -> {axis: "v1,v2"}; a repeated axis is an error."""
    out: dict[str, str] = {}
    problems = []
    for flag in flags:
        name, sep, values = flag.partition("=")
        if not sep or not name.strip():
            problems.append(f"--grid {flag!r}: expected AXIS=V1,V2,... (axes: {', '.join(AXES)})")
            continue
        axis = AXIS_ALIASES.get(name.strip().lower(), name.strip())
        if axis in out:
            problems.append(f"--grid {axis} is given twice")
        out[axis] = values
    if problems:
        raise ConfigError(problems)
    return out


# Grid presets: axes and settings a preset brings when neither a flag nor the TOML file gives them.
# "tiny" runs the three paper ablations (stages, pointing off/on/only, clean vs noisy captions) end to
# end in about two minutes on two cores: for tests, docs and trying the machinery, not for findings.
GRID_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "axes": {"stages": "1,1+2,1+2+3", "pointing": "off,on,only", "captions": "clean,noisy"},
        "settings": {
            "tasks": "vqav2,gqa,refcoco,pointqa",
            "bench_size": "tiny",
            "limit": 6,
            "bootstrap": 100,
            "batch_size": 32,
        },
    },
}


def load_spec(config: Path | None, grid_flags: Sequence[str], overrides: Mapping[str, Any]) -> GridSpec:
    """A TOML file (top-level settings + a ``[grid]`` table of axes), then ``--grid`` flags and other
    flags on top; for a grid that names no axis, then what the preset (`GRID_PRESETS`) brings for
    whatever is still unset."""
    axes: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    if config is not None:
        from molmo_eval.core.compat import tomllib

        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("grid configuration not found", path=config) from None
        except tomllib.TOMLDecodeError as e:
            raise DataError(f"not valid TOML ({e})", path=config) from None
        table = data.pop("grid", {})
        if not isinstance(table, dict):
            raise DataError("expected a table of axes", path=config, field="grid")
        axes.update({AXIS_ALIASES.get(str(k), str(k)): v for k, v in table.items()})
        settings.update(data)
    axes.update(parse_grid_flags(grid_flags))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    # a grid preset applies only to a grid that names no axis: with axes, the preset is the model's alone
    preset = {} if axes else GRID_PRESETS.get(str(settings.get("preset", GridSpec.preset)), {})
    for axis, values in preset.get("axes", {}).items():
        axes.setdefault(axis, values)
    for key, value in preset.get("settings", {}).items():
        settings.setdefault(key, value)
    return build_spec(axes, settings)

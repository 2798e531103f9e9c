"""The run configuration: built once at the edge (CLI flags, a TOML file, or Python keywords) into
one typed, validated `RunConfig` that is passed down. Every problem is reported at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from molmo_eval.core.compat import tomllib
from molmo_eval.core.errors import ConfigError
from molmo_eval.core.types import GenerationSettings

DEFAULT_MODEL = "reference"


@dataclass(frozen=True)
class RunConfig:
    tasks: tuple[str, ...]
    model: str = DEFAULT_MODEL
    model_args: Mapping[str, str] = field(default_factory=dict)
    batch_size: int = 8
    limit: int | float | None = None  # first N groups of each split, or a fraction 0 < F < 1 of them
    seed: int = 0
    output_path: Path | None = None
    log_samples: bool = True
    max_failures: int | None = None  # stop the run once this many samples failed (None: no limit)
    device: str | None = None
    use_cache: bool = True
    cache_dir: Path | None = None
    data_root: Path | None = None  # None: the embedded mini world
    data_dirs: Mapping[str, Path] = field(default_factory=dict)  # per-task folder overrides
    splits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # task (or "*") -> splits
    variants: Mapping[str, str] = field(default_factory=dict)  # task (or "*") -> variant
    prompt_style: str | None = None  # None: the model's own
    gen_kwargs: Mapping[str, Any] = field(default_factory=dict)  # overrides of every task's generation settings
    bootstrap: int = 1000  # bootstrap resamples per metric (0: no CIs)
    workers: int = 4  # image-loading threads
    debug: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, Mapping):
                v = {k: (str(x) if isinstance(x, Path) else list(x) if isinstance(x, tuple) else x)
                     for k, x in v.items()}
                if f.name == "model_args":
                    v = redact(v)
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


SECRET_WORDS = ("key", "token", "secret", "password")


def redact(args: Mapping[str, str]) -> dict[str, str]:
    """Model arguments safe to record: anything that looks like a secret is masked."""
    return {k: ("***" if any(w in k.lower() for w in SECRET_WORDS) and not k.lower().endswith("_env") else v)
            for k, v in args.items()}


def parse_limit(value: str | int | float) -> int | float:
    """``--limit`` as lmms-eval reads it: a value below 1 is a fraction of each split (0.1 = the first
    10%, rounded up), anything else a count; an integral float (10.0) is the count 10."""
    try:
        v = float(value) if isinstance(value, str) else value
    except ValueError:
        v = None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"expected a count N >= 0 or a fraction 0 < F < 1, got {value!r}")
    if 0 < v < 1:
        return float(v)
    if v != int(v):
        raise ValueError(f"expected a count N >= 0 or a fraction 0 < F < 1, got {value!r}")
    return int(v)


def limit_count(limit: int | float, total: int) -> int:
    """How many of ``total`` groups a parsed ``--limit`` keeps (a fraction rounds up, as lmms-eval's)."""
    return min(total, math.ceil(total * limit) if isinstance(limit, float) else limit)


GEN_KWARGS = ("max_new_tokens", "temperature", "do_sample", "until")


def parse_gen_kwargs(given: str | Mapping[str, Any]) -> dict[str, Any]:
    """``--gen-kwargs max_new_tokens=128,temperature=0.2`` (lmms-eval's ``--gen_kwargs``), or a TOML table,
    -> typed overrides of the tasks' generation settings: ``max_new_tokens`` (int >= 1), ``temperature``
    (>= 0), ``do_sample`` (false forces temperature 0, as greedy decoding), ``until`` (a stop string)."""
    raw = parse_kv(given, "--gen-kwargs") if isinstance(given, str) else dict(given)
    out: dict[str, Any] = {}
    problems = []
    for k, v in raw.items():
        try:
            if k == "max_new_tokens":
                out[k] = int(_number(v, 1, integer=True))
            elif k == "temperature":
                out[k] = _number(v, 0.0)
            elif k == "do_sample":
                out[k] = _flag(v)
            elif k == "until":
                out[k] = str(v)
            else:
                problems.append(f"--gen-kwargs {k}=...: not a generation setting molmo-eval models take "
                                f"(expected some of {', '.join(GEN_KWARGS)})")
        except ValueError as e:
            problems.append(f"--gen-kwargs {k}={v!r}: {e}")
    if problems:
        raise ConfigError(problems)
    return out


def _number(v: Any, low: float, *, integer: bool = False) -> float:
    what = "an integer" if integer else "a number"
    try:
        n = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        n = math.nan
    if math.isnan(n) or (integer and not n.is_integer()):
        raise ValueError(f"expected {what}")
    if not math.isfinite(n) or n < low:
        raise ValueError(f"expected {what} >= {low:g}")
    return n


def _flag(v: Any) -> bool:
    text = str(v).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError("expected true or false")


def generation_settings(base: GenerationSettings, overrides: Mapping[str, Any]) -> GenerationSettings:
    """A task's generation settings with ``--gen-kwargs`` applied (they are part of the cache key)."""
    kw: dict[str, Any] = {}
    if "max_new_tokens" in overrides:
        kw["max_new_tokens"] = int(overrides["max_new_tokens"])
    if "temperature" in overrides:
        kw["temperature"] = float(overrides["temperature"])
    if overrides.get("do_sample") is False:
        kw["temperature"] = 0.0
    if "until" in overrides:
        kw["stop"] = (str(overrides["until"]),)
    return replace(base, **kw)


def parse_kv(text: str, flag: str) -> dict[str, str]:
    """``k=v,k2=v2`` -> dict. Values may not contain commas (as in lmms-eval's --model_args)."""
    out: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        if "=" not in item:
            raise ConfigError(f"{flag}: {item!r} is not key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse_scoped(values: Sequence[str], flag: str) -> dict[str, str]:
    """``--split val`` (every task) or ``--split refcoco=testA,pope=random`` -> {task|"*": value}."""
    out: dict[str, str] = {}
    for text in values:
        for item in filter(None, (s.strip() for s in text.split(","))):
            if "=" in item:
                k, v = item.split("=", 1)
                out[k.strip()] = v.strip()
            else:
                out["*"] = item
    return out


def build(tasks: str | Sequence[str], **kw: Any) -> RunConfig:
    """Validate and build a RunConfig from Python values (the CLI and TOML files come through here)."""
    problems: list[str] = []
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t and t.strip()]
    if not names:
        problems.append("--tasks: give at least one task (see `molmo-eval tasks`)")
    if len(set(names)) != len(names):
        problems.append(f"--tasks: a task is named twice in {','.join(names)}")
    kw = dict(kw)
    for key in ("batch_size", "workers"):
        if key in kw and kw[key] is not None and (not isinstance(kw[key], int) or kw[key] < 1):
            problems.append(f"--{key.replace('_', '-')}: expected a positive integer, got {kw[key]!r}")
    for key in ("max_failures", "bootstrap"):
        if kw.get(key) is not None and (not isinstance(kw[key], int) or kw[key] < 0):
            problems.append(f"--{key.replace('_', '-')}: expected a non-negative integer, got {kw[key]!r}")
    if kw.get("limit") is not None:
        try:
            kw["limit"] = parse_limit(kw["limit"])
        except ValueError as e:
            problems.append(f"--limit: {e}")
    for key in ("output_path", "cache_dir", "data_root"):
        if kw.get(key) is not None:
            kw[key] = Path(kw[key]).expanduser()
    if kw.get("data_root") is not None and not kw["data_root"].is_dir():
        problems.append(f"--data-root: {kw['data_root']} is not a directory")
    dirs = {k: Path(v).expanduser() for k, v in (kw.get("data_dirs") or {}).items()}
    for k, p in dirs.items():
        if not p.is_dir():
            problems.append(f"--data-root {k}={p}: not a directory")
    kw["data_dirs"] = dirs
    splits = kw.get("splits") or {}
    kw["splits"] = {k: tuple(v.split("+")) if isinstance(v, str) else tuple(v) for k, v in splits.items()}
    kw["variants"] = dict(kw.get("variants") or {})
    try:
        kw["gen_kwargs"] = parse_gen_kwargs(kw.get("gen_kwargs") or {})
    except ConfigError as e:
        problems += e.problems
    kw["model_args"] = {str(k): str(v) for k, v in (kw.get("model_args") or {}).items()}
    for scope, what in ((kw["splits"], "--split"), (kw["variants"], "--variant"), (dirs, "--data-root")):
        for k in scope:
            if k != "*" and k not in names:
                problems.append(f"{what} {k}=...: {k!r} is not among --tasks {','.join(names)}")
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(kw) - known)
    if unknown:
        problems.append(f"unknown setting(s): {', '.join(unknown)}")
    if problems:
        raise ConfigError(problems)
    clean = {k: v for k, v in kw.items() if v is not None or k in ("limit", "max_failures", "output_path",
                                                                     "cache_dir", "data_root", "device",
                                                                     "prompt_style")}
    return RunConfig(tasks=tuple(names), **clean)


def load_toml(path: Path) -> dict[str, Any]:
    """Read a run configuration file: the same keys as the CLI flags, with underscores.

    ``model_args``, ``splits``, ``variants`` and ``data_dirs`` are TOML tables."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config: {path} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {path}: invalid TOML ({e})") from None
    return data


def with_overrides(cfg: RunConfig, **kw: Any) -> RunConfig:
    return replace(cfg, **kw)

"""The run configuration: built once at the edge (CLI flags, a TOML file, or Python keywords) into
one typed, validated `RunConfig` that is passed down. Every problem is reported at once.
"""

from __future__ import annotations

import math
import os
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
    overwrite: bool = False  # replace a run of another evaluation in output_path (see run.rundir)
    # failed samples accepted (status ok); more stop the run. None: no stop, any failure -> "partial"
    max_failures: int | None = None
    max_failures_pct: float | None = None  # the same as a percentage of the run's samples
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
                out[k] = _truth(v)
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


def _truth(v: Any) -> bool:
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
    """Validate and build a RunConfig from Python values (the CLI and TOML files come through here).

    Every value is checked for its type (a TOML file may hold ``batch_size = "8"`` or ``splits = 3``);
    every problem is reported at once."""
    problems: list[str] = []
    if isinstance(tasks, str):
        names = [t.strip() for t in tasks.split(",") if t.strip()]
    elif isinstance(tasks, Sequence) and all(isinstance(t, str) for t in tasks):
        names = [t.strip() for t in tasks if t.strip()]
    else:
        problems.append(f"--tasks: expected task names (a comma-separated string or a list of strings), "
                        f"got {_shown(tasks)}")
        names = []
    if not names and not problems:
        problems.append("--tasks: give at least one task (see `molmo-eval tasks`)")
    if len(set(names)) != len(names):
        problems.append(f"--tasks: a task is named twice in {','.join(names)}")
    kw = dict(kw)
    known = {f.name for f in fields(RunConfig)} - {"tasks", "max_failures_pct"}
    unknown = sorted(set(kw) - known)
    if unknown:
        problems.append(f"unknown setting(s): {', '.join(unknown)}")
    for key in set(kw) - set(unknown):
        problem = check_setting(key, kw[key])
        if problem:
            problems.append(f"{_flag(key)}: {problem}")
            kw.pop(key)
    if kw.get("max_failures") is not None:
        kw["max_failures"], kw["max_failures_pct"] = parse_failure_limit(kw["max_failures"], problems)
    if kw.get("limit") is not None:
        try:
            kw["limit"] = parse_limit(kw["limit"])
        except ValueError as e:
            problems.append(f"--limit: {e}")
            kw.pop("limit")
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
    kw["model_args"] = {str(k): _arg_text(v) for k, v in (kw.get("model_args") or {}).items()}
    for scope, what in ((kw["splits"], "--split"), (kw["variants"], "--variant"), (dirs, "--data-root")):
        for k in scope:
            if k != "*" and k not in names:
                problems.append(f"{what} {k}=...: {k!r} is not among --tasks {','.join(names)}")
    if problems:
        raise ConfigError(problems)
    clean = {k: v for k, v in kw.items() if v is not None or k in _OPTIONAL}
    return RunConfig(tasks=tuple(names), **clean)


_OPTIONAL = ("limit", "max_failures", "max_failures_pct", "output_path", "cache_dir", "data_root", "device",
             "prompt_style")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _shown(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_path(v: Any) -> bool:
    return isinstance(v, (str, os.PathLike)) and str(v) != ""


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool))


def _names_to(check: Any) -> Any:
    return lambda v: isinstance(v, Mapping) and all(isinstance(k, str) and check(x) for k, x in v.items())


def _splits_value(v: Any) -> bool:
    return isinstance(v, str) or (isinstance(v, (list, tuple)) and bool(v) and all(isinstance(x, str) for x in v))


# key -> (accepts the value, what was expected); None is accepted for every key (the default)
_TYPES: dict[str, tuple[Any, str]] = {
    "model": (lambda v: isinstance(v, str) and bool(v), "a model name (a string)"),
    "model_args": (_names_to(_is_scalar), "a table of name = string, number or boolean"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "workers": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "limit": (lambda v: isinstance(v, (int, float, str)) and not isinstance(v, bool),
              "a count N >= 0 or a fraction 0 < F < 1"),  # then read by parse_limit
    "bootstrap": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "seed": (_is_int, "an integer"),
    "max_failures": (lambda v: (_is_int(v) and v >= 0) or isinstance(v, str),
                     "a non-negative integer N or a percentage such as \"5%\""),
    "output_path": (_is_path, "a folder path (a string)"),
    "cache_dir": (_is_path, "a folder path (a string)"),
    "data_root": (_is_path, "a folder path (a string)"),
    "log_samples": (lambda v: isinstance(v, bool), "true or false"),
    "use_cache": (lambda v: isinstance(v, bool), "true or false"),
    "overwrite": (lambda v: isinstance(v, bool), "true or false"),
    "debug": (lambda v: isinstance(v, bool), "true or false"),
    "device": (lambda v: isinstance(v, str), "a device name such as cpu or cuda:0"),
    "prompt_style": (lambda v: isinstance(v, str), "a prompt style name"),
    "gen_kwargs": (lambda v: isinstance(v, str) or _names_to(_is_scalar)(v),
                   "K=V,... or a table of generation settings"),  # then read by parse_gen_kwargs
    "data_dirs": (_names_to(_is_path), "a table of task = folder path"),
    "splits": (_names_to(_splits_value), "a table of task = split name or list of split names"),
    "variants": (_names_to(lambda v: isinstance(v, str)), "a table of task = variant name"),
}


def check_setting(key: str, value: Any) -> str:
    """Why ``value`` is not acceptable for setting ``key`` ("" when it is)."""
    if value is None or key not in _TYPES:
        return ""
    accepts, expected = _TYPES[key]
    return "" if accepts(value) else f"expected {expected}, got {_shown(value)}"


def _arg_text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def parse_failure_limit(value: Any, problems: list[str]) -> tuple[int | None, float | None]:
    """``--max-failures``: a count ``N`` (int or digits) or a percentage ``"P%"`` of the run's samples
    -> (count, percent); a malformed value is added to ``problems``."""
    if _is_int(value):
        return value, None
    text = str(value).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if math.isfinite(pct) and 0 <= pct <= 100:
                return None, pct
        elif text.isdigit() and len(text) <= 18:
            return int(text), None
    except ValueError:
        pass
    problems.append(f"--max-failures: expected a non-negative integer N or a percentage 0-100%, got {text!r}")
    return None, None


def load_toml(path: Path) -> dict[str, Any]:
    """Read a run configuration file: the same keys as the CLI flags, with underscores.

    ``model_args``, ``splits``, ``variants`` and ``data_dirs`` are TOML tables."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--config: {path} not found")
    if not path.is_file():  # a folder, or a FIFO that would block the read
        raise ConfigError(f"--config {path}: not a regular file")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read ({e.strerror or e})") from None
    except (ValueError, RecursionError) as e:  # TOMLDecodeError, or an integer beyond the digit limit
        raise ConfigError(f"--config {path}: invalid TOML ({str(e)[:200] or type(e).__name__})") from None
    return data


def with_overrides(cfg: RunConfig, **kw: Any) -> RunConfig:
    return replace(cfg, **kw)

"""A deterministic scripted model for tests and experiments: outputs come from a JSONL file
mapping sample id -> text, or from a Python callable. Never random.

JSONL lines: ``{"id": "42", "text": "yes"}``; add ``"task"`` and ``"split"`` when ids repeat across
tasks or splits (the most specific match wins: task/split/id, then task/id, then id). A line
with ``"error": "..."`` scripts a per-sample failure. A sample with no line fails with a clear
error (it is recorded and counted, not silently answered), unless ``default=TEXT`` gives the answer of
every sample without a line; ``default`` alone (no file) is a constant model, which needs no weights
and no torch (the CI smoke on other Python versions uses it).

    molmo-eval --model scripted --model-args outputs=answers.jsonl,coord_space=percent --tasks pope
    molmo-eval --model scripted --model-args default=yes --tasks pope       # always "yes"
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from molmo_eval.core.errors import ConfigError, DataError
from molmo_eval.core.types import CoordSpace, Generation, Request

Script = Callable[[Request], "str | Generation"]


class ScriptedModel:
    """Deterministic outputs from a JSONL file (sample id -> text) or a Python callable."""

    name = "scripted"
    description = "deterministic outputs from a JSONL file (sample id -> text) or a Python callable"
    needs_pixels = False

    def __init__(self, outputs: str | None = None, *, fn: Script | None = None, coord_space: str = "pixels",
                 prompt_style: str = "default", delay: str | float = 0.0, fingerprint: str | None = None,
                 default: str | None = None, device: str | None = None, **unknown: str):
        if unknown:
            raise ConfigError(f"--model-args: unknown argument(s) for model 'scripted': {', '.join(sorted(unknown))} "
                              "(expected outputs, default, coord_space, prompt_style, delay)")
        if fn is not None and (outputs is not None or default is not None):
            raise ConfigError("model 'scripted': give fn= alone, or outputs= and/or default=")
        if fn is None and outputs is None and default is None:
            raise ConfigError("--model-args: model 'scripted' needs outputs=FILE.jsonl and/or default=TEXT "
                              "(or fn= from Python)")
        try:
            self.coord_space = CoordSpace(coord_space)
        except ValueError:
            raise ConfigError(f"--model-args: coord_space={coord_space!r} is not one of "
                              f"{', '.join(c.value for c in CoordSpace)}") from None
        self.prompt_style = prompt_style
        self.delay = float(delay)
        self.calls = 0  # requests answered (tests count model calls with it)
        self._fn = fn
        self._default = default
        self._table: dict[str, dict[str, object]] = {}
        if fn is not None:
            digest = fingerprint or f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
        else:
            h = hashlib.sha256()
            if outputs is not None:
                path = Path(outputs)
                self._table = _read_script(path)
                h.update(path.read_bytes())
            if default is not None:
                h.update(b"\0default\0" + default.encode())
            digest = h.hexdigest()[:16]
        self.fingerprint = fingerprint or f"scripted-{digest}-{self.coord_space.value}-{prompt_style}"

    def cache_extra(self, request: Request) -> str:
        return request.uid  # outputs are keyed by sample, not by request content

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        if self.delay:
            time.sleep(self.delay)
        out = []
        for r in requests:
            self.calls += 1
            out.append(self._one(r))
        return out

    def _one(self, r: Request) -> Generation:
        if self._fn is not None:
            res = self._fn(r)
            return res if isinstance(res, Generation) else Generation(text=str(res))
        task, split, sid = r.uid.split("/", 2)
        row = self._table.get(r.uid) or self._table.get(f"{task}//{sid}") or self._table.get(f"//{sid}")
        if row is None:
            if self._default is not None:
                return Generation(text=self._default)
            return Generation(text="", error=f"no scripted output for sample {r.uid}")
        if row.get("error"):
            return Generation(text="", error=str(row["error"]))
        return Generation(text=str(row.get("text", "")))


def _read_script(path: Path) -> dict[str, dict[str, object]]:
    if not path.is_file():
        raise ConfigError(f"--model-args outputs={path}: file not found")
    table: dict[str, dict[str, object]] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"not valid JSON ({e.msg})", path=path, record=f"at line {lineno}") from None
            if not isinstance(row, dict) or "id" not in row:
                raise DataError("missing field", path=path, record=f"at line {lineno}", field="id",
                                expected='{"id": ..., "text": ...} with optional "task", "split"')
            key = f"{row.get('task', '')}/{row.get('split', '')}/{row['id']}"
            table[key] = row
    return table

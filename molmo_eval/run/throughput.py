"""Generation throughput of a run (a grid cell's evaluation), measured in that run.

`Timed` wraps the model an evaluation (the grid's `evaluate_cell`) hands to the runner: it times
every ``generate`` call and counts the tokens generated (the model's own tokenizer, plus the end-of-sequence token, when it
has one; else words and punctuation marks). The runner records a model's ``counts()`` in the run record as
``model_<name>`` counts, so ``model_generated_tokens`` and ``model_generate_ms`` travel with the
RunRecord into the grid record and the reports (`tokens_per_s`). Outputs served from the response
cache are not generated, so a run answered entirely from the cache has no throughput (undefined,
never 0).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

TOKENS = "model_generated_tokens"
MILLIS = "model_generate_ms"
_WORDS = re.compile(r"<[^<>\s]+>|\w+|[^\w\s]")


class Timed:
    """A model proxy that measures ``generate``; every other attribute is the model's."""

    def __init__(self, model: Any):
        self._model = model
        self._tokens = 0
        self._ns = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, requests: Sequence[Any]) -> list[Any]:
        t0 = time.perf_counter_ns()
        out = self._model.generate(requests)
        self._ns += time.perf_counter_ns() - t0
        self._tokens += sum(self._count(g.text) for g in out)
        return out

    def _count(self, text: str) -> int:
        tok = getattr(self._model, "tok", None)
        encode = getattr(tok, "encode", None)
        # the model's tokens plus the end-of-sequence token it decoded to stop (an empty answer is
        # still one decoding step)
        return len(encode(text)) + 1 if callable(encode) else len(_WORDS.findall(text))

    def counts(self) -> dict[str, int]:
        inner = getattr(self._model, "counts", None)
        own = {"generated_tokens": self._tokens, "generate_ms": round(self._ns / 1e6)}
        return {**(inner() if callable(inner) else {}), **own}


def tokens_per_s(counts: Mapping[str, Any]) -> float:
    """Generated tokens per second of generation time in a record's counts (NaN: nothing generated
    in that run, e.g. every output came from the response cache, or no measurement)."""
    tokens, ms = counts.get(TOKENS), counts.get(MILLIS)
    if tokens is None or not ms:
        return float("nan")
    return 1000.0 * float(tokens) / float(ms)

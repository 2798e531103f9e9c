"""The model protocol (DESIGN §3): batched ``generate`` plus what the harness needs to cache,
record and parse a model's outputs.

Models are registered through the ``molmo_eval.models`` entry-point group; an entry point names
a factory called as ``factory(**model_args)`` with string values from ``--model-args k=v,...``
(and ``device`` when ``--device`` is given). Factories import heavy dependencies inside, so
listing models never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from molmo_eval.core.types import CoordSpace, Generation, Request


@runtime_checkable
class Model(Protocol):
    name: str
    fingerprint: str  # digest of weights + config (+ anything else that changes outputs)
    coord_space: CoordSpace  # the space its points are written in
    prompt_style: str  # "default" or a family style such as "molmo"
    needs_pixels: bool  # decode images (False: bytes and digest only)

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """One Generation per request, in order. Raise for a batch-wide failure (the runner then
        retries sample by sample); return ``Generation(text="", error=...)`` for one failed sample."""
        ...

    def cache_extra(self, request: Request) -> str:
        """Anything beyond the request content that decides this model's output ("" for a pure
        function of prompt, images and settings)."""
        ...


def describe(model: Model) -> dict[str, str]:
    return {"name": model.name, "fingerprint": model.fingerprint,
            "coord_space": model.coord_space.value, "prompt_style": model.prompt_style}

"""The `reference` model: the bundled reference Molmo model behind the `Model` protocol.

This adapter is the only place where the harness reaches `molmo_eval.reference_model` for
evaluation (the trainer has `molmo-eval train`). It turns Requests into pixel tensors and prompt
ids, runs batched greedy decoding with a KV cache, and returns the decoded text. Points come out
as ``<point> <x_k> <y_k>`` tokens (`CoordSpace.BINS`); prompts are rendered in the "molmo" style.

    molmo-eval --tasks refcoco,pointqa                                  # the bundled checkpoint
    molmo-eval --model reference --model-args checkpoint=runs/train/stage3_pointing --tasks pope

Model arguments: ``checkpoint=DIR`` (default: the bundled one), ``threads=N`` (torch threads,
default $OMP_NUM_THREADS or 2), ``max_batch=N`` (requests decoded together, default 64). torch and the
weights are loaded at the first request that reaches the model, so listing models stays fast, a
run served entirely from the response cache never loads them, and a missing torch is one clear line.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError, MissingDependency
from molmo_eval.core.types import CoordSpace, Generation, Request

BUNDLED = "molmo-ref-v3"  # folder under reference_model/checkpoints/


def bundled_checkpoint() -> Path:
    from importlib import resources

    return Path(str(resources.files("molmo_eval.reference_model") / "checkpoints" / BUNDLED))


class ReferenceModel:
    """Factory and model: ``ReferenceModel(checkpoint=DIR)``."""

    name = "reference"
    description = "the bundled reference Molmo model (ViT + MLP connector + LM with point tokens), CPU"
    coord_space = CoordSpace.BINS
    prompt_style = "molmo"
    needs_pixels = True

    def __init__(self, checkpoint: str | None = None, *, device: str = "cpu", threads: str | int | None = None,
                 max_batch: str | int = 64, **unknown: str):
        if unknown:
            raise ConfigError(f"--model-args: unknown argument(s) for model 'reference': "
                              f"{', '.join(sorted(unknown))} (expected checkpoint, threads, max_batch)")
        from importlib.util import find_spec

        if find_spec("torch") is None:  # located, not imported: a missing torch fails now, in one line
            raise MissingDependency("torch", "model", "the reference model")
        path = Path(checkpoint).expanduser() if checkpoint else bundled_checkpoint()
        if not ((path / WEIGHTS).is_file() and (path / CONFIG).is_file()):
            raise ConfigError(f"--model-args checkpoint={path}: not a reference-model checkpoint "
                              f"(needs {CONFIG} and {WEIGHTS})")
        if threads is None:  # OMP_NUM_THREADS when set (torchrun sets 1 per rank), else 2
            import os

            threads = os.environ.get("OMP_NUM_THREADS") or 2
        self.threads, self.max_batch = _positive(threads, "threads"), _positive(max_batch, "max_batch")
        self.device = device
        self.path = path
        self.fingerprint = f"reference-{checkpoint_digest(path)[:20]}"
        self._loaded: tuple[Any, Any, Any] | None = None  # torch and the weights: at the first model call
        # prefix embeddings (the vision encoder + connector output) of recent images, by image
        # digest: benchmarks ask several questions about one image (POPE's three splits, RefCOCO's
        # referring expressions, MMBench's circular passes), and this part is about half the cost
        self._prefixes = _Lru(PREFIX_CACHE_IMAGES)

    @property
    def model(self) -> Any:
        return self._load()[0]

    @property
    def tok(self) -> Any:
        return self._load()[1]

    @property
    def meta(self) -> Any:
        return self._load()[2]

    def _load(self) -> tuple[Any, Any, Any]:
        """torch and the checkpoint, loaded when a request first reaches the model: a run whose every
        output is in the response cache never imports torch (1-3 s) nor loads the weights."""
        if self._loaded is None:
            passive_openmp()
            try:
                import torch
            except ModuleNotFoundError:
                raise MissingDependency("torch", "model", "the reference model") from None
            from molmo_eval.reference_model import checkpoint as ckpt

            torch.set_num_threads(self.threads)
            self._loaded = ckpt.load(self.path, device=self.device)
        return self._loaded

    def counts(self) -> dict[str, int]:
        """For the run record (``counts.model_loads``): whether the weights were loaded at all."""
        return {"loads": int(self._loaded is not None)}

    def cache_extra(self, request: Request) -> str:
        return ""  # outputs are a pure function of the prompt, the image and the settings

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        out: list[Generation] = []
        for i in range(0, len(requests), self.max_batch):
            out.extend(self._batch(requests[i:i + self.max_batch]))
        return out

    def _batch(self, requests: Sequence[Request]) -> list[Generation]:
        import torch

        from molmo_eval.reference_model.generate import generate
        from molmo_eval.reference_model.model import Prefix
        from molmo_eval.reference_model.processing import image_tensor, prompt_ids

        size = self.model.cfg.image_size
        keys = [_image_key(r) for r in requests]
        prompts = [prompt_ids(self.tok, r.prompt) for r in requests]
        limits = [max(1, r.settings.max_new_tokens) for r in requests]
        with torch.inference_mode():
            todo = {k: r for k, r in zip(keys, requests) if k not in self._prefixes}
            if todo:  # the vision encoder runs once per image not met recently
                px = image_tensor([_pixels(r, size) for r in todo.values()], size).to(self.device)
                for k, pre in zip(todo, self.model.prefix(px).split()):
                    self._prefixes.put(k, pre)
            prefix = Prefix.stack([self._prefixes.get(k) for k in keys])
            ids = generate(self.model, None, prompts, max(limits), prefix=prefix)
        texts = [self.tok.decode(seq[:n]) for seq, n in zip(ids, limits)]
        return [Generation(text=_cut(t, r.settings.stop)) for t, r in zip(texts, requests)]


WEIGHTS, CONFIG = "model.safetensors", "config.json"  # a checkpoint's files (reference_model.checkpoint)


def checkpoint_digest(path: Path) -> str:
    """``reference_model.checkpoint.digest``, the checkpoint's identity (sha256 of the weights and of
    the output-deciding part of the config), computed without torch: that module imports torch at
    its top, and the fingerprint is needed before the cache says whether the model is (tests check
    that the two agree)."""
    h = hashlib.sha256()
    with open(path / WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    config = json.loads((path / CONFIG).read_text())
    identity = {k: config.get(k) for k in ("format", "model", "dtype", "tokenizer")}
    h.update(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


PREFIX_CACHE_IMAGES = 256  # x (P, D) float32: about 13 MB for the bundled model


class _Lru:
    """A small least-recently-used map (one process, one thread: the runner calls generate serially)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._d: OrderedDict[str, Any] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._d

    def get(self, key: str) -> Any:
        self._d.move_to_end(key)
        return self._d[key]

    def put(self, key: str, value: Any) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.capacity:
            self._d.popitem(last=False)


def _image_key(request: Request) -> str:
    """What identifies a request's image: its digest; requests without one share the gray image."""
    if request.images and request.images[0].pixels is not None:
        return request.images[0].digest
    return "<no image>"


def passive_openmp() -> None:
    """Idle OpenMP threads sleep instead of spinning (unless the user chose otherwise). On a busy
    machine spinning threads made a 2-thread step 4-7x slower; the setting only takes effect when
    torch is first imported."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _pixels(request: Request, size: int) -> Any:
    """The request's first image as (H, W, 3) uint8; a mid-gray image when a request has none."""
    import numpy as np

    if request.images and request.images[0].pixels is not None:
        return request.images[0].pixels
    return np.full((size, size, 3), 128, dtype=np.uint8)


def _cut(text: str, stop: Sequence[str]) -> str:
    """Text before the first stop string."""
    ends = [text.find(s) for s in stop if s and s in text]
    return text[:min(ends)] if ends else text


def _positive(v: str | int, what: str) -> int:
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"--model-args {what}={v!r}: expected a positive integer")
    return n

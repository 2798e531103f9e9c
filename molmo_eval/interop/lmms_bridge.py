"""lmms-eval model ``molmo_reference``: any registered molmo-eval model behind lmms-eval's model API.

    lmms-eval --model molmo_reference --model_args model=reference,checkpoint=DIR \\
              --tasks molmo_all --include_path DIR_FROM_molmo-eval_export_lmms-tasks

Where it sits: lmms-eval's evaluator calls ``generate_until(instances)``; this turns each lmms-eval
Instance into a molmo-eval `Request` (prompt = lmms-eval's context, images from the task's
``doc_to_visual``, settings from its ``generation_kwargs``), calls the wrapped model's batched
``generate`` through the runner's per-sample retry (`runner.generate_safe`), and returns text.

- ``--model_args``: ``model=NAME`` picks the molmo-eval model (default ``reference``); every other
  key goes to its factory as a string, as ``molmo-eval --model-args`` would pass it. lmms-eval's
  ``--batch_size`` is the number of requests per ``generate`` call; ``--device`` goes to the model.
- Images: a PIL image opened from a file (what exported tasks give) is read from that file, so the
  model sees the bytes a molmo-eval run reads; other PIL images are passed as lossless PNG; a path
  string is read as a file. An image that cannot be read fails that sample only.
- A failed sample returns ``ERROR_PREFIX + message`` (lmms-eval has no failure channel); exported
  tasks score it as a failed sample, as a run does. Raw outputs are kept for the exported tasks'
  scorers (lmms-eval strips outputs; `molmo_eval.interop.lmms_hooks`).
- Only generation: ``loglikelihood`` and multi-round generation raise NotImplementedError.

lmms-eval 0.7.3 finds external models through `ModelManifest` entries of the ``lmms_eval.models``
entry-point group (``molmo_reference = "molmo_eval.interop.lmms_bridge:manifest"``); ``@register_model``
alone does not reach its registry. This module imports neither lmms-eval nor torch until the class is
first used (module ``__getattr__``), so the entry point is cheap to load and molmo-eval never needs
lmms-eval installed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from molmo_eval.core.errors import ConfigError
from molmo_eval.core.types import (
    AnswerKind,
    CoordSpace,
    Generation,
    GenerationSettings,
    Image,
    ImageRef,
    Request,
)
from molmo_eval.interop.lmms_hooks import ERROR_PREFIX, remember_output

MODEL_ID = "molmo_reference"
CLASS_PATH = "molmo_eval.interop.lmms_bridge.MolmoReference"
POINT_KINDS = (AnswerKind.POINTS.value, AnswerKind.BOX.value)


def manifest() -> Any:
    """The entry-point payload lmms-eval 0.7.3 expects: a `ModelManifest` for ``molmo_reference``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH)


def __getattr__(name: str) -> Any:
    if name == "MolmoReference":
        return _model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- pieces that need no lmms-eval ------------------------------------------------------------------

def molmo_model_args(args: Mapping[str, Any]) -> dict[str, str]:
    """lmms-eval parses ``--model_args`` values into bools and numbers; molmo-eval factories take strings."""
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in args.items()}


def settings_from(gen_kwargs: Mapping[str, Any] | None) -> GenerationSettings:
    """lmms-eval ``generation_kwargs`` -> GenerationSettings (greedy unless sampling is asked for)."""
    kw = dict(gen_kwargs or {})
    until = kw.get("until") or ()
    stop = (until,) if isinstance(until, str) else tuple(str(s) for s in until)
    default = GenerationSettings()
    temperature = float(kw.get("temperature") or 0.0) if kw.get("do_sample", True) else 0.0
    return GenerationSettings(max_new_tokens=int(kw.get("max_new_tokens") or default.max_new_tokens),
                              temperature=temperature, stop=stop)


def visual_image(visual: Any, decode: bool) -> Image:
    """One lmms-eval visual as a molmo-eval Image (see the module docstring for the rules)."""
    from molmo_eval.data.images import load_image

    if isinstance(visual, str):
        return load_image(ImageRef(path=visual), decode)
    filename = getattr(visual, "filename", "")
    if filename:
        return load_image(ImageRef(path=str(filename)), decode)
    if hasattr(visual, "save"):
        buf = io.BytesIO()
        visual.save(buf, format="PNG")
        return load_image(ImageRef(data=buf.getvalue()), decode)
    raise ValueError(f"cannot pass a {type(visual).__name__} visual to a molmo-eval model (images only)")


def is_exported(doc: Mapping[str, Any]) -> bool:
    """A document written by `molmo-eval export lmms-tasks` (it carries the sample it was made from)."""
    return all(k in doc for k in ("uid", "sample", "answer_kind", "coord_space"))


def check_space(doc: Mapping[str, Any], space: CoordSpace, model: str) -> None:
    """Exported point tasks prompt and parse in one coordinate space: it must be the model's."""
    want = doc.get("coord_space")
    if want and doc.get("answer_kind") in POINT_KINDS and want != space.value:
        raise ConfigError(f"task {doc.get('task')!r} was exported for points in {want!r}, but molmo-eval "
                          f"model {model!r} writes {space.value!r}; re-export with "
                          f"`molmo-eval export lmms-tasks --coord-space {space.value}` (or --model {model})")


def batch_count(batch_size: Any) -> int:
    """lmms-eval's ``--batch_size`` (N, "auto" or "auto:N"): N requests per call; 8 for "auto"."""
    text = str(batch_size).split(":")[-1]
    return max(1, int(text)) if text.isdigit() else 8


def batches(requests: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """Consecutive requests of one task, ``size`` at a time: the batches a molmo-eval run forms (it batches
    each task's samples in order), so even a model whose outputs depend on batch mates answers alike."""
    out: list[Sequence[Any]] = []
    start = 0
    for i in range(1, len(requests) + 1):
        if i == len(requests) or i - start == size or requests[i].args[4] != requests[start].args[4]:
            out.append(requests[start:i])
            start = i
    return out


def text_of(gen: Generation) -> str:
    return ERROR_PREFIX + (gen.error or "") if gen.error is not None else gen.text


# --- the lmms-eval class ------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _model_class() -> type:
    from lmms_eval.api.model import lmms

    class MolmoReference(lmms):
        """A molmo-eval model (``model=NAME``, default ``reference``) as an lmms-eval simple model."""

        is_simple = True

        def __init__(self, model: str = "reference", batch_size: Any = 8, device: str | None = None,
                     max_batch_size: Any = None, **model_args: Any) -> None:
            super().__init__()
            from accelerate import Accelerator

            from molmo_eval.core import registry

            accelerator = Accelerator()
            self.accelerator = accelerator
            self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
            self._device = _device_for(device, accelerator.local_process_index, accelerator.num_processes)
            kwargs = molmo_model_args(model_args)
            if self._device is not None:
                kwargs["device"] = self._device
            try:
                self.model = registry.model_factory(str(model))(**kwargs)
            except TypeError as e:
                raise ConfigError(f"--model_args for molmo-eval model {model!r}: {e}") from None
            self.model_name = str(model)
            self.batch_size = batch_count(batch_size)
            self._warned_style: set[str] = set()

        @property
        def device(self) -> Any:
            import torch

            return torch.device(self._device or getattr(self.model, "device", None) or "cpu")

        def generate_until(self, requests: Sequence[Any]) -> list[str]:
            from tqdm import tqdm

            out: list[str] = []
            bar = tqdm(total=len(requests), disable=self.rank != 0, desc="molmo_reference")
            for chunk in batches(requests, self.batch_size):
                out.extend(self._generate([self._request(inst) for inst in chunk], chunk))
                bar.update(len(chunk))
            bar.close()
            return out

        def _request(self, inst: Any) -> Request | str:
            """A molmo-eval Request, or the error text of a sample that cannot be sent."""
            context, gen_kwargs, doc_to_visual, doc_id, task, split = inst.args
            doc = self.task_dict[task][split][doc_id]
            exported = is_exported(doc)
            if exported:
                check_space(doc, self.model.coord_space, self.model_name)
                self._check_style(doc)
            try:
                visuals = doc_to_visual(doc) if doc_to_visual is not None else []
                decode = self.model.needs_pixels
                images = tuple(visual_image(v, decode) for v in visuals or [] if v is not None)
            except Exception as e:  # one unreadable image fails its sample, as in a molmo-eval run
                return f"{ERROR_PREFIX}image: {e}"
            settings = settings_from(gen_kwargs)
            if not exported:  # an lmms-eval task's document
                return Request(uid=f"{task}/{split}/{doc_id}", prompt=context, images=images,
                               settings=settings, answer_kind=AnswerKind.TEXT, sample_id=str(doc_id),
                               task=str(task))
            return Request(uid=doc["uid"], prompt=context, images=images, settings=settings,
                           answer_kind=AnswerKind(doc["answer_kind"]), sample_id=str(doc["id"]),
                           task=doc["task"])

        def _generate(self, reqs: list[Request | str], chunk: Sequence[Any]) -> list[str]:
            from molmo_eval.run.runner import generate_safe

            todo = [r for r in reqs if isinstance(r, Request)]
            gens = iter(generate_safe(self.model, todo) if todo else [])
            texts = []
            for r, inst in zip(reqs, chunk):
                text = text_of(next(gens)) if isinstance(r, Request) else r
                if isinstance(r, Request):
                    remember_output(r.uid, text)
                self.cache_hook.add_partial("generate_until", (inst.args[0], inst.args[1]), text)
                texts.append(text)
            return texts

        def _check_style(self, doc: Mapping[str, Any]) -> None:
            style, task = doc.get("prompt_style"), str(doc.get("task"))
            if style and style != self.model.prompt_style and task not in self._warned_style:
                self._warned_style.add(task)
                from loguru import logger

                logger.warning(f"task {task!r} was exported with {style!r} prompts; molmo-eval model "
                               f"{self.model_name!r} uses {self.model.prompt_style!r} "
                               "(a molmo-eval run would)")

        def loglikelihood(self, requests: Sequence[Any]) -> list[tuple[float, bool]]:
            raise NotImplementedError("molmo_reference generates text only: molmo-eval models have no "
                                      "log-likelihood API; use tasks with output_type generate_until")

        def generate_until_multi_round(self, requests: Sequence[Any]) -> list[str]:
            raise NotImplementedError("molmo_reference does not support multi-round generation")

    MolmoReference.__module__ = __name__
    MolmoReference.__qualname__ = "MolmoReference"
    return MolmoReference


def _device_for(device: str | None, local_rank: int, world: int) -> str | None:
    """``cuda`` under several processes becomes ``cuda:<local rank>``; None leaves the model's default."""
    if device and world > 1 and device == "cuda":
        return f"cuda:{local_rank}"
    return device or None

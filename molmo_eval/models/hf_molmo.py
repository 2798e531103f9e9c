"""The `hf-molmo` model: Molmo2 and the original Molmo through Hugging Face transformers, from a local
folder only, at the Model.generate stage of the pipeline (DESIGN §3).

- **Molmo2** (``model_type: molmo2``, e.g. allenai/Molmo2-4B, -8B, -O-7B): transformers' native
  ``Molmo2ForConditionalGeneration`` and ``Molmo2Processor`` (transformers >= 5.20, the first release
  that ships them; developed against 5.24). The prompt goes through the checkpoint's chat template
  with one ``{"type": "image"}`` part per image before the text; a batch is left-padded and
  generated at once (greedy unless the task asks for a temperature).
- **Molmo** (``model_type: molmo``, allenai/Molmo-7B-D-0924, -7B-O-0924, -72B-0924, MolmoE-1B): the
  checkpoint's own code (``trust_remote_code=true`` must be given: it runs Python shipped with the
  weights), ``processor.process`` and ``model.generate_from_batch``, one request at a time (that code
  has no batched preprocessing). It needs transformers >= 4.45 and < 5 (VLMEvalKit reports
  4.46.1-4.53 working and 5.x failing), so it cannot share an environment with native Molmo2.

Both write points as Molmo does, ``<point x="45.5" y="67.0">`` in percent of the image, so the model
declares ``CoordSpace.PERCENT`` and the ``molmo`` prompt style.

Molmo2's image processor is written on torchvision. Where torchvision is missing (or does not import
beside the installed torch), ``image_backend=auto`` uses `TorchMolmo2ImageProcessor`: the same
transformers class with its three torchvision calls (bilinear resize without antialiasing,
normalize, grayscale-to-RGB) replaced by the torch operations torchvision itself runs for them; its
outputs were checked bit-identical to the torchvision processor's (see docs/backends.md).

    molmo-eval --model hf-molmo --model-args pretrained=/models/Molmo2-4B,dtype=bfloat16 --device cuda
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import ConfigError, MissingDependency
from molmo_eval.core.types import CoordSpace, Generation, GenerationSettings, Request

MOLMO2_MIN_TRANSFORMERS = "5.20"
DTYPES = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("auto", "torchvision", "torch")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
SLICES, SLICE_BYTES = 16, 1 << 20  # sampled per weight file by the fingerprint


@dataclass(frozen=True)
class HFOptions:
    """Validated ``--model-args`` of `hf-molmo` (read without importing torch)."""

    path: Path
    family: str  # "molmo2" | "molmo"
    device: str | None = None  # None: cuda when available, else cpu
    dtype: str = "auto"  # auto: bfloat16 on cuda, float32 on cpu
    trust_remote_code: bool = False
    image_backend: str = "auto"
    prompt_style: str = "molmo"
    fingerprint: str | None = None


def parse_options(args: Mapping[str, Any]) -> HFOptions:
    """Check ``--model-args`` and the checkpoint folder; every problem is reported at once."""
    known = (
        "pretrained",
        "device",
        "dtype",
        "trust_remote_code",
        "image_backend",
        "prompt_style",
        "fingerprint",
    )
    problems: list[str] = []
    unknown = sorted(set(args) - set(known))
    if unknown:
        problems.append(
            f"--model-args: unknown argument(s) for model 'hf-molmo': {', '.join(unknown)} "
            f"(expected some of {', '.join(known)})"
        )
    dtype = str(args.get("dtype") or "auto")
    if dtype not in DTYPES:
        problems.append(f"--model-args dtype={dtype!r}: expected one of {', '.join(DTYPES)}")
    backend = str(args.get("image_backend") or "auto")
    if backend not in BACKENDS:
        problems.append(f"--model-args image_backend={backend!r}: expected one of {', '.join(BACKENDS)}")
    trust = str(args.get("trust_remote_code", "false")).lower()
    if trust not in ("true", "false", "1", "0", "yes", "no"):
        problems.append(f"--model-args trust_remote_code={trust!r}: expected true or false")
    trusted = trust in ("true", "1", "yes")
    path, family = _checkpoint(args.get("pretrained"), trusted, problems)
    if problems:
        raise ConfigError(problems)
    return HFOptions(
        path=path,
        family=family,
        device=args.get("device") or None,
        dtype=dtype,
        trust_remote_code=trusted,
        image_backend=backend,
        prompt_style=str(args.get("prompt_style") or "molmo"),
        fingerprint=args.get("fingerprint"),
    )


def _checkpoint(pretrained: Any, trusted: bool, problems: list[str]) -> tuple[Path, str]:
    if not pretrained:
        problems.append("--model-args pretrained=DIR: required (a local folder with config.json and weights)")
        return Path(), ""
    path = Path(str(pretrained)).expanduser()
    if not path.is_dir():
        problems.append(
            f"--model-args pretrained={pretrained}: not a local folder (weights are read only from "
            f"disk, never downloaded; e.g. `huggingface-cli download allenai/Molmo2-4B --local-dir DIR`)"
        )
        return path, ""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problems.append(f"--model-args pretrained={pretrained}: cannot read config.json ({e})")
        return path, ""
    family = config.get("model_type") if isinstance(config, dict) else None
    if family not in ("molmo2", "molmo"):
        problems.append(
            f"{path / 'config.json'}: model_type {family!r} is not a Molmo checkpoint "
            "(expected molmo2 or molmo)"
        )
    elif family == "molmo" and not trusted:
        problems.append(
            f"--model-args pretrained={pretrained}: the original Molmo runs the Python code shipped "
            "in that folder; read it, then pass trust_remote_code=true"
        )
    return path, family or ""


# --- the model --------------------------------------------------------------------------------


class HFMolmo:
    """Molmo2 (native transformers classes) or original Molmo (trust_remote_code), local weights only."""

    name = "hf-molmo"
    description = "Molmo2 (transformers>=5.20) or original Molmo (trust_remote_code) from a local folder"
    needs_pixels = True
    coord_space = CoordSpace.PERCENT

    def __init__(self, **model_args: Any):
        self.options = parse_options(model_args)
        torch, transformers = _imports()
        self.prompt_style = self.options.prompt_style
        self.device = _device(torch, self.options.device)
        self.dtype = _dtype(torch, self.options.dtype, self.device)
        if self.options.family == "molmo2":
            self.model, self.processor, self.image_backend = _load_molmo2(
                transformers, self.options, self.dtype
            )
        else:
            self.model, self.processor, self.image_backend = _load_molmo(
                transformers, self.options, self.dtype
            )
        self.model.to(device=self.device, dtype=self.dtype).eval()
        self.fingerprint = self.options.fingerprint or fingerprint(
            self.options.path,
            [
                self.options.family,
                str(self.dtype),
                self.device.type,
                transformers.__version__,
                self.image_backend,
            ],
        )

    def cache_extra(self, request: Request) -> str:
        return ""

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        out: dict[int, Generation] = {}
        groups: dict[tuple[GenerationSettings, bool], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.settings, bool(r.images)), []).append(i)
        for (settings, _), idx in groups.items():
            batch = [requests[i] for i in idx]
            texts = (
                self._generate_molmo2(batch, settings)
                if self.options.family == "molmo2"
                else [self._generate_molmo(r, settings) for r in batch]
            )
            for i, text in zip(idx, texts, strict=True):
                out[i] = Generation(text=_cut(text, settings.stop))
        return [out[i] for i in range(len(requests))]

    def _generate_molmo2(self, batch: Sequence[Request], s: GenerationSettings) -> list[str]:
        import torch

        texts = [
            self.processor.apply_chat_template([_message(r)], add_generation_prompt=True, tokenize=False)
            for r in batch
        ]
        images = [_pil(im.pixels) for r in batch for im in r.images] or None
        inputs = self.processor(text=texts, images=images, return_tensors="pt", padding=True).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        tok = self.processor.tokenizer
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                **_sampling(s),
                **({"stop_strings": list(s.stop)} if s.stop else {}),
                tokenizer=tok,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        return tok.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    def _generate_molmo(self, r: Request, s: GenerationSettings) -> str:
        import torch
        from transformers import GenerationConfig

        inputs = self.processor.process(images=[_pil(im.pixels) for im in r.images] or None, text=r.prompt)
        inputs = {k: v.to(self.device).unsqueeze(0) for k, v in inputs.items()}
        if "images" in inputs:
            inputs["images"] = inputs["images"].to(self.dtype)
        config = GenerationConfig(**_sampling(s), stop_strings=["<|endoftext|>", *s.stop])
        with torch.inference_mode():
            out = self.model.generate_from_batch(inputs, config, tokenizer=self.processor.tokenizer)
        return self.processor.tokenizer.decode(
            out[0, inputs["input_ids"].size(1) :], skip_special_tokens=True
        )


# --- helpers ----------------------------------------------------------------------------------


def _imports() -> tuple[Any, Any]:
    try:
        import torch
    except ImportError:
        raise MissingDependency("torch", "hf", "model 'hf-molmo'") from None
    try:
        import transformers
    except ImportError:
        raise MissingDependency("transformers", "hf", "model 'hf-molmo'") from None
    return torch, transformers


def _device(torch: Any, name: str | None) -> Any:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r}: not a torch device (cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available in this torch build")
    return dev


def _dtype(torch: Any, name: str, device: Any) -> Any:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32  # bf16 is very slow on CPU
    return getattr(torch, name)


def _load_molmo2(transformers: Any, opts: HFOptions, dtype: Any) -> tuple[Any, Any, str]:
    if not hasattr(transformers, "Molmo2ForConditionalGeneration"):
        raise ConfigError(
            f"model 'hf-molmo': Molmo2 needs transformers >= {MOLMO2_MIN_TRANSFORMERS} (native "
            f"Molmo2 classes); this environment has {transformers.__version__}"
        )
    model = transformers.Molmo2ForConditionalGeneration.from_pretrained(
        opts.path, local_files_only=True, dtype=dtype
    )
    backend = opts.image_backend
    if backend == "auto":
        backend = "torchvision" if torchvision_usable() else "torch"
    if backend == "torchvision":
        processor = transformers.AutoProcessor.from_pretrained(opts.path, local_files_only=True)
    else:
        processor = torch_processor(opts.path)
    if not processor.chat_template:
        raise ConfigError(
            f"{opts.path}: the checkpoint has no chat template (chat_template.jinja or "
            "chat_template.json), which Molmo2 prompts are built with"
        )
    processor.tokenizer.padding_side = "left"  # batched generation continues every row at its end
    return model, processor, backend


def _load_molmo(transformers: Any, opts: HFOptions, dtype: Any) -> tuple[Any, Any, str]:
    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        raise ConfigError(
            f"model 'hf-molmo': the original Molmo's remote code needs transformers >= 4.45 and < 5 "
            f"(this environment has {transformers.__version__}); use a separate environment"
        )
    model = transformers.AutoModelForCausalLM.from_pretrained(
        opts.path, trust_remote_code=True, local_files_only=True, torch_dtype=dtype
    )
    processor = transformers.AutoProcessor.from_pretrained(
        opts.path, trust_remote_code=True, local_files_only=True
    )
    return model, processor, "remote-code"


def torchvision_usable() -> bool:
    """True when torchvision imports (a torchvision built for another torch fails at import)."""
    try:
        import torchvision.transforms.v2.functional  # noqa: F401
    except Exception:
        return False
    return True


def _message(r: Request) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "image"} for _ in r.images] + [{"type": "text", "text": r.prompt}],
    }


def _pil(pixels: Any) -> Any:
    from PIL import Image as PILImage

    assert pixels is not None, "hf-molmo declares needs_pixels"
    return PILImage.fromarray(pixels)


def _sampling(s: GenerationSettings) -> dict[str, Any]:
    if s.temperature > 0:
        return {"max_new_tokens": s.max_new_tokens, "do_sample": True, "temperature": s.temperature}
    return {"max_new_tokens": s.max_new_tokens, "do_sample": False}


def _cut(text: str, stop: Sequence[str]) -> str:
    """Text up to the first stop string (generation may run a few tokens past it)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


def fingerprint(path: Path, extra: Sequence[str]) -> str:
    """Digest of the checkpoint: every small file (configs, tokenizer, chat template) in full, and for
    each weight file its size, its safetensors header and 16 evenly spaced 1 MiB slices (a full hash
    of a 16 GB checkpoint takes minutes; a fine-tune changes nearly every slice). Plus ``extra``:
    family, dtype, device type, transformers version, image backend."""
    h = hashlib.blake2b(digest_size=16)
    files = (p for p in path.rglob("*") if p.is_file())
    for f in sorted(p for p in files if not any(part.startswith(".") for part in p.relative_to(path).parts)):
        rel = f.relative_to(path).as_posix()
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if f.suffix not in WEIGHT_SUFFIXES:
            h.update(f.read_bytes() if size <= 64 << 20 else b"")
            continue
        with open(f, "rb") as fh:
            head = fh.read(8)
            if f.suffix == ".safetensors" and len(head) == 8:
                h.update(fh.read(min(int.from_bytes(head, "little"), 100 << 20)))
            for k in range(SLICES):
                fh.seek(max(0, size - SLICE_BYTES) * k // max(1, SLICES - 1))
                h.update(fh.read(SLICE_BYTES))
    h.update("\0".join(extra).encode())
    return f"hf-molmo-{h.hexdigest()}"


# --- Molmo2 preprocessing without torchvision ---------------------------------------------------


def torch_processor(path: Path) -> Any:
    """Molmo2Processor assembled from the checkpoint's files with `TorchMolmo2ImageProcessor` and no
    video processor (this harness sends images only)."""
    from transformers import AutoTokenizer
    from transformers.models.molmo2.processing_molmo2 import Molmo2Processor

    class ImageOnlyMolmo2Processor(Molmo2Processor):
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument is None and argument_name == "video_processor":
                return None  # the video processor class is a torchvision placeholder here
            return super().check_argument_for_proper_class(argument_name, argument)

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    image_processor = _torch_image_processor_class().from_pretrained(path, local_files_only=True)
    config = _read_json(path / "processor_config.json")
    kwargs = {
        k: config[k]
        for k in (
            "image_use_col_tokens",
            "use_single_crop_col_tokens",
            "use_single_crop_start_token",
            "video_use_col_tokens",
            "use_frame_special_tokens",
        )
        if k in config
    }
    return ImageOnlyMolmo2Processor(
        image_processor=image_processor,
        video_processor=None,
        tokenizer=tokenizer,
        chat_template=_chat_template(path, config, tokenizer),
        **kwargs,
    )


def _chat_template(path: Path, config: Mapping[str, Any], tokenizer: Any) -> str | None:
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text(encoding="utf-8")
    from_json = _read_json(path / "chat_template.json").get("chat_template")
    return from_json or config.get("chat_template") or getattr(tokenizer, "chat_template", None)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


_TORCH_IMAGE_PROCESSOR: Any = None


def _torch_image_processor_class() -> Any:
    """`Molmo2ImageProcessor` with torchvision's three calls done by the torch ops behind them."""
    global _TORCH_IMAGE_PROCESSOR
    if _TORCH_IMAGE_PROCESSOR is not None:
        return _TORCH_IMAGE_PROCESSOR
    import torch
    from torch.nn import functional as F
    from transformers.image_utils import PILImageResampling
    from transformers.models.molmo2.image_processing_molmo2 import Molmo2ImageProcessor

    class TorchMolmo2ImageProcessor(Molmo2ImageProcessor):
        def resize(
            self, image: Any, size: Any, resample: Any = None, antialias: bool = True, **kw: Any
        ) -> Any:
            # torchvision's resize of a float tensor is F.interpolate(bilinear, align_corners=False)
            if resample not in (None, PILImageResampling.BILINEAR, int(PILImageResampling.BILINEAR)):
                raise ConfigError(
                    f"image_backend=torch reproduces bilinear resizing only (this checkpoint asks "
                    f"for {resample!r}); install torchvision matching torch"
                )
            if not image.dtype.is_floating_point or not (size.height and size.width):
                raise NotImplementedError("image_backend=torch: Molmo2 resizes float images to a fixed size")
            return F.interpolate(
                image,
                size=(size.height, size.width),
                mode="bilinear",
                align_corners=False,
                antialias=antialias,
            )

        def normalize(  # type: ignore[override]  # torchvision backend's tensor signature
            self, image: Any, mean: Any, std: Any, inplace: bool = False, **kw: Any
        ) -> Any:
            mean = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
            std = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
            return image.sub_(mean).div_(std) if inplace else image.sub(mean).div(std)

        def convert_to_rgb(self, image: Any, input_data_format: Any = None) -> Any:
            if image.ndim == 2:
                image = image[None]
            if image.shape[-3] == 1:
                return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).clone()
            if image.shape[-3] == 3:
                return image
            raise NotImplementedError("image_backend=torch: RGBA arrays are not supported (pass RGB)")

    _TORCH_IMAGE_PROCESSOR = TorchMolmo2ImageProcessor
    return TorchMolmo2ImageProcessor

"""Checkpoints: safetensors weights + JSON (config, tokenizer, metadata). Loading never unpickles.

A checkpoint directory holds

    model.safetensors   weights (float16 on disk by default, half the size; computed in float32)
    config.json         {"model": ModelConfig, "tokenizer": vocab, "meta": {...}}
    training_log.jsonl  (written by train.py) one line per logged step

The digest of ``model.safetensors`` and the output-deciding part of ``config.json`` (everything but
``meta``) identifies a checkpoint (the harness uses it as the model fingerprint). Training state for
resuming (optimizer moments, step) is a second safetensors file with a JSON sidecar, written by
`save_state` next to the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .config import ModelConfig
from .model import MolmoModel
from .tokenizer import Tokenizer

WEIGHTS, CONFIG = "model.safetensors", "config.json"
STATE, STATE_JSON = "train_state.safetensors", "train_state.json"
FORMAT = "molmo-reference/1"


def save(model: MolmoModel, tokenizer: Tokenizer, out: Path, meta: dict[str, Any] | None = None,
         dtype: torch.dtype = torch.float16) -> Path:
    """Write weights and config to ``out`` atomically (each file via a temporary name)."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous()
               for k, v in model.state_dict().items()}
    _atomic(out / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": FORMAT}))
    config = {"format": FORMAT, "model": model.cfg.to_json(), "dtype": str(dtype).removeprefix("torch."),
              "tokenizer": tokenizer.to_json(), "meta": meta or {}}
    _atomic(out / CONFIG, lambda p: p.write_text(json.dumps(config, indent=1) + "\n"))
    return out


def load(path: Path, device: str = "cpu") -> tuple[MolmoModel, Tokenizer, dict[str, Any]]:
    """Rebuild the model of a checkpoint directory in float32, in eval mode."""
    cfg_file, weights = path / CONFIG, path / WEIGHTS
    if not cfg_file.is_file() or not weights.is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint (needs {CONFIG} and {WEIGHTS})")
    config = json.loads(cfg_file.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{cfg_file}: format {config.get('format')!r}, expected {FORMAT!r}")
    model = MolmoModel(ModelConfig.from_json(config["model"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights), device=device).items()}
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), Tokenizer.from_json(config["tokenizer"]), config.get("meta", {})


def digest(path: Path) -> str:
    """sha256 over the weights and what of the config decides outputs (format, model config, dtype,
    tokenizer): the checkpoint's identity. ``meta`` (command, timings, held-out scores) is left out,
    so the same weights keep the same identity whatever the run that wrote them recorded."""
    h = hashlib.sha256()
    with open(path / WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    config = json.loads((path / CONFIG).read_text())
    identity = {k: config.get(k) for k in ("format", "model", "dtype", "tokenizer")}
    h.update(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def is_checkpoint(path: Path) -> bool:
    return (path / WEIGHTS).is_file() and (path / CONFIG).is_file()


# --- training state (resume) ------------------------------------------------------------------

def save_state(out: Path, model: MolmoModel, opt: torch.optim.Optimizer, info: dict[str, Any]) -> None:
    """Full-precision weights + AdamW moments (flattened to named tensors) + JSON counters."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in st:
                    tensors[f"opt.{names[id(p)]}.{key}"] = st[key].contiguous()
            if "step" in st:
                info.setdefault("opt_steps", {})[names[id(p)]] = float(st["step"])
    _atomic(out / STATE, lambda p: save_file(tensors, str(p)))
    _atomic(out / STATE_JSON, lambda p: p.write_text(json.dumps(info) + "\n"))


def load_state(out: Path, model: MolmoModel, opt: torch.optim.Optimizer | None) -> dict[str, Any] | None:
    """Restore what `save_state` wrote (the optimizer moments only when ``opt`` is given); None when
    there is nothing to resume."""
    if not (out / STATE).is_file() or not (out / STATE_JSON).is_file():
        return None
    info = json.loads((out / STATE_JSON).read_text())
    tensors = load_file(str(out / STATE))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    steps = info.get("opt_steps", {}) if opt is not None else {}
    for name, p in model.named_parameters():
        if name in steps and opt is not None:
            opt.state[p] = {"step": torch.tensor(steps[name]),
                            "exp_avg": tensors[f"opt.{name}.exp_avg"].clone(),
                            "exp_avg_sq": tensors[f"opt.{name}.exp_avg_sq"].clone()}
    return info


def clear_state(out: Path) -> None:
    for name in (STATE, STATE_JSON):
        (out / name).unlink(missing_ok=True)


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)

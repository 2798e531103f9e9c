"""Add the pointer's initial weights to a run's saved stage-2 state written by code without the
pointer, so that `molmo-eval train ... --resume` continues as one run with the pointer would: the
pointer draws from its own generator and gets no gradient before stage 3
(tests/test_pointer.py checks both on the tiny preset, weight for weight).

    python bench/pilots/add_pointer_state.py RUN_DIR

Used once, for molmo-ref-v3's run (its model card says why).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from safetensors.torch import load_file, save_file
from molmo_eval.reference_model.config import ModelConfig
from molmo_eval.reference_model.pointer import Pointer
from molmo_eval.reference_model.tokenizer import N_BINS
out = Path(sys.argv[1])
info = json.loads((out / "state" / "train_state.json").read_text())
assert info["stage"] == 2, info
t = load_file(str(out / "state" / "train_state.safetensors"))
assert not any(k.startswith("model.pointer.") for k in t)
cfg = ModelConfig.from_json(json.loads((out / "train_config.json").read_text())["model"])
p = Pointer(replace(cfg, pointer=True), N_BINS)
for k, v in p.state_dict().items():
    t[f"model.pointer.{k}"] = v.contiguous()
save_file(t, str(out / "state" / "train_state.safetensors"))
print("added", [k for k in t if k.startswith("model.pointer.")])

"""Stage-0 pilots: train the vision encoder on dense scene labels and track held-out patch accuracy.

    python bench/pilots/vision.py --name NAME [--steps 600] [--set field=value ...] [--target ...]

Prints and logs (``docs/pilots/vision-NAME.jsonl``) every ``--eval-every`` steps the accuracy of
the (linear) patch head on held-out scenes: category and colour on object patches, word on sign
patches. A pilot is compared with the best so far at the same step (docs/reference-model.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from molmo_eval.reference_model import vision_pretrain as vp
from molmo_eval.reference_model.config import preset
from molmo_eval.reference_model.train import StageConfig, lr_at
from molmo_eval.reference_model.vision import VisionEncoder


def parse_sets(items: list[str]) -> dict:
    out = {}
    for it in items:
        k, v = it.split("=", 1)
        out[k] = tuple(int(x) for x in v.split(",")) if k == "stem" else type_of(k)(v)
    return out


def type_of(k: str):
    from dataclasses import fields

    from molmo_eval.reference_model.config import ModelConfig
    return {f.name: f.type for f in fields(ModelConfig)}[k] == "int" and int or float


def evaluate(enc, head, batches) -> dict:
    stats: dict[str, list[float]] = {}
    enc.eval()
    with torch.no_grad():
        for px, lab, ch in batches:
            vp.patch_loss(enc, enc.head, head, px, lab, ch, stats)
    enc.train()
    return {k: round(sum(v) / len(v), 4) for k, v in stats.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--word-weight", type=float, default=1.0)
    ap.add_argument("--text-every", type=int, default=0)
    ap.add_argument("--chars", action="store_true", help="glyph labels on the stem's half-resolution map")
    ap.add_argument("--clip", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = replace(preset("default"), **parse_sets(a.set)).validate()
    cfg = replace(cfg, tags=vp.tag_sizes())
    enc = VisionEncoder(cfg)
    head = vp.CharHead(cfg.stem[-1]) if a.chars else None
    params = list(enc.parameters()) + (list(head.parameters()) if head is not None else [])
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.95), weight_decay=0.05)
    stage = StageConfig(0, "vision", a.steps, a.batch, a.lr, a.lr, {}, warmup=20)
    src = vp.SceneSource(a.seed * 1000, cfg.grid, a.text_every).groups(0)
    held = vp.SceneSource(7919, cfg.grid).groups(0)
    held_batches = [vp.patch_batch([next(held) for _ in range(32)], cfg) for _ in range(8)]
    rich = vp.SceneSource(7919, cfg.grid, text_every=1).groups(10**6)
    rich_batches = [vp.patch_batch([next(rich) for _ in range(32)], cfg) for _ in range(2)]
    log_path = Path("docs/pilots") / f"vision-{a.name}.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    log.write(json.dumps({"pilot": a.name, "command": " ".join(sys.argv), "model": cfg.to_json()}) + "\n")
    t0, data_t = time.perf_counter(), 0.0
    for step in range(a.steps):
        td = time.perf_counter()
        px, lab, ch = vp.patch_batch([next(src) for _ in range(a.batch)], cfg)
        data_t += time.perf_counter() - td
        for g in opt.param_groups:
            g["lr"] = a.lr * lr_at(step, stage)
        loss = vp.patch_loss(enc, enc.head, head, px, lab, ch, word_weight=a.word_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, a.clip)
        opt.step()
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            el = time.perf_counter() - t0
            entry = {"step": step + 1, "loss": round(float(loss.detach()), 4), "elapsed_s": round(el, 1),
                     "data_s": round(data_t, 1), **{f"heldout_{k}": v for k, v in evaluate(enc, head, held_batches).items()},
                     **{f"textrich_{k}": v for k, v in evaluate(enc, head, rich_batches).items()
                        if k in ("word", "char")}}
            print(json.dumps(entry), flush=True)
            log.write(json.dumps(entry) + "\n")
            log.flush()
    torch.save({"encoder": enc.state_dict(), "chars": head.state_dict() if head is not None else {}, "model": cfg.to_json()},
               f"/work/pilots/vision-{a.name}.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

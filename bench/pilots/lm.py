"""Language-model pilots: stages 1-2(-3) on top of a pre-trained (stage-0) vision encoder.

    python bench/pilots/lm.py --name NAME --vision /work/pilots/vision-p4-noword-600.pt \\
        --steps 1=200,2=600 [--pool 4000] [--set stage.field=value ...]

Trains with `reference_model.train` (the real loop), logs every stage's training_log.jsonl under
``runs/pilots/NAME/`` and prints the held-out accuracy per question family after each stage.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import torch

from molmo_eval.reference_model import checkpoint
from molmo_eval.reference_model import train as rt
from molmo_eval.reference_model.config import ModelConfig
from molmo_eval.reference_model.model import MolmoModel


def bench_groups(size: str) -> dict:
    cache = Path(f"/work/pilots/bench-{size}.pkl")
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    from molmo_eval.training.bench_examples import benchmark_groups

    groups = benchmark_groups(size, 0, True)
    cache.write_bytes(pickle.dumps(groups))
    return groups


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--vision", required=True, help="a vision pilot's .pt (encoder state)")
    ap.add_argument("--steps", default="1=200,2=600")
    ap.add_argument("--bench-size", default="small")
    ap.add_argument("--pool", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heldout", type=int, default=60)
    ap.add_argument("--no-tagger", action="store_true")
    ap.add_argument("--set", nargs="*", default=[], help="N.field=value overrides of stage N")
    ap.add_argument("--model", nargs="*", default=[], help="field=value overrides of the LM config")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ck = torch.load(a.vision)
    mcfg = ModelConfig.from_json(ck["model"])
    for item in a.model:
        k, v = item.split("=", 1)
        mcfg = replace(mcfg, **{k: type(getattr(mcfg, k))(v)})
    steps = {int(k): int(v) for k, v in (x.split("=") for x in a.steps.split(","))}
    plan = {s.number: s for s in rt.stage_plan("default", bench=True, stages=(1, 2, 3), vision_pretrain=False)}
    stages = []
    for n, st in sorted(steps.items()):
        s = replace(plan[n], steps=st, vision_lr=0.0)
        for item in a.set:
            key, v = item.split("=", 1)
            num, field = key.split(".", 1)
            if int(num) == n:
                cur = getattr(s, field)
                s = replace(s, **{field: json.loads(v) if isinstance(cur, dict) else type(cur)(v)})
        stages.append(s)
    extra = bench_groups(a.bench_size)
    tok = rt.build_tokenizer([t for g in extra.values() for x in g for t in rt._texts(x)])
    torch.manual_seed(0)
    from molmo_eval.reference_model.vision_pretrain import tag_sizes, tag_words

    tagger = not a.no_tagger
    model = MolmoModel(replace(mcfg, vocab_size=len(tok), tags=tag_sizes() if tagger else ()))
    enc = dict(ck["encoder"])
    if "head" in ck:  # the first vision pilots kept the tagger apart from the encoder
        enc |= {f"head.{k}": v for k, v in ck["head"].items() if k.startswith("proj.")}
    if not tagger:
        enc = {k: v for k, v in enc.items() if not k.startswith("head.")}
    model.vision.load_state_dict(enc)
    if tagger:
        model.set_tag_words(tag_words(tok))
    out = Path("runs/pilots") / a.name
    init = out / "init"
    checkpoint.save(model, tok, init, {"pilot": a.name})
    cfg = rt.TrainConfig(model.cfg, tuple(stages), seed=0, threads=a.threads, heldout=a.heldout, pool=a.pool,
                         tagger=tagger,
                         meta={"pilot": a.name, "command": " ".join(sys.argv)})
    last = rt.train(cfg, out, extra=extra, init=init)
    print(f"trained: {last}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage-3 (pointing) pilots from an LM pilot's stage-2 checkpoint.

    python bench/pilots/stage3.py --name NAME --init runs/pilots/L2-p4-ground/stage2_instruct --steps 600

Logs training_log.jsonl under ``runs/pilots/NAME/`` and prints the held-out accuracy per family.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from molmo_eval.reference_model import checkpoint
from molmo_eval.reference_model import train as rt

sys.path.insert(0, str(Path(__file__).parent))
from lm import bench_groups  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--init", required=True)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--pool", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--heldout", type=int, default=60)
    ap.add_argument("--set", nargs="*", default=[], help="field=value overrides of stage 3")
    ap.add_argument("--zero-tags", action="store_true",
                    help="start stage 3 with the connector's tag gain at 0: the lexical tags leave the visual "
                         "tokens' values (the grounding bias still reads them)")
    ap.add_argument("--pointer", action="store_true",
                    help="add the pointer (pointer.py, at its initial weights) to a checkpoint without one")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    plan = {s.number: s for s in rt.stage_plan("default", bench=True, stages=(1, 2, 3), vision_pretrain=False)}
    s = replace(plan[3], steps=a.steps, vision_lr=0.0)
    for item in a.set:
        k, v = item.split("=", 1)
        cur = getattr(s, k)
        s = replace(s, **{k: json.loads(v) if isinstance(cur, dict) else type(cur)(v)})
    model, tok, _ = checkpoint.load(Path(a.init))
    if a.pointer and model.pointer is None:
        from molmo_eval.reference_model.model import MolmoModel

        plain = model
        model = MolmoModel(replace(plain.cfg, pointer=True))
        missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("pointer.") for k in missing), (missing, unexpected)
    if a.zero_tags or a.pointer:
        init = Path("runs/pilots") / a.name / "init"
        if a.zero_tags:
            with torch.no_grad():
                model.connector.tag_gain.zero_()
        checkpoint.save(model, tok, init, {"pilot": a.name})
        a.init = str(init)
    cfg = rt.TrainConfig(model.cfg, (s,), seed=0, threads=a.threads, heldout=a.heldout, pool=a.pool,
                         tagger=bool(model.cfg.tags), meta={"pilot": a.name, "command": " ".join(sys.argv)})
    last = rt.train(cfg, Path("runs/pilots") / a.name, extra=bench_groups("small"), init=Path(a.init))
    print(f"trained: {last}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

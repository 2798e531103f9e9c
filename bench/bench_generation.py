"""Generation throughput of the reference model: KV cache + batching vs re-running the full forward.

    python bench/bench_generation.py [--checkpoint DIR] [--n 64] [--batch 1,8,32] [--new 16] [--json]

Requests are held-out world questions (captions excluded) on unseen scenes. For every batch size it
times (a) batched greedy decoding with the KV cache (`generate`) and (b) the same decoding that
re-runs the whole sequence, image included, at every step (`generate_uncached`), and checks that
both write exactly the same tokens, and the same tokens as batch size 1.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the harness does (before torch is imported)

import torch  # noqa: E402

from molmo_eval.reference_model import checkpoint  # noqa: E402
from molmo_eval.reference_model.evaluate import world_groups  # noqa: E402
from molmo_eval.reference_model.generate import generate, generate_uncached  # noqa: E402
from molmo_eval.reference_model.processing import image_tensor, prompt_ids  # noqa: E402


def run(fn, model, items, tok, batch: int, new: int) -> tuple[float, list[list[int]]]:
    outs: list[list[int]] = []
    t0 = time.perf_counter()
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        px = image_tensor([c[0] for c in chunk], model.cfg.image_size)
        outs += fn(model, px, [prompt_ids(tok, c[1]) for c in chunk], max_new_tokens=new)
    return time.perf_counter() - t0, outs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the bundled one)")
    ap.add_argument("--n", type=int, default=64, help="requests")
    ap.add_argument("--batch", default="1,8,32", help="batch sizes")
    ap.add_argument("--new", type=int, default=16, help="max new tokens")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint is None:
        from molmo_eval.models.reference import bundled_checkpoint

        args.checkpoint = bundled_checkpoint()
    model, tok, _ = checkpoint.load(args.checkpoint)
    groups = world_groups("point", args.n // 4 + 1) + world_groups("ask", args.n // 4 + 1)
    items = [(g.image, p) for g in groups for p, _ in g.pairs]
    items = (items[::2] + items[1::2])[:args.n]  # interleave point and ask questions
    rows = []
    ref: list[list[int]] | None = None
    with torch.inference_mode():
        for b in (int(x) for x in args.batch.split(",")):
            t_cache, out_cache = run(generate, model, items, tok, b, args.new)
            t_full, out_full = run(generate_uncached, model, items, tok, b, args.new)
            ref = ref if ref is not None else out_cache
            n_tok = sum(len(o) + 1 for o in out_cache)  # + the <eos> step
            rows.append({"batch": b, "cached_s": round(t_cache, 3), "uncached_s": round(t_full, 3),
                         "cached_tokens_per_s": round(n_tok / t_cache, 1),
                         "uncached_tokens_per_s": round(n_tok / t_full, 1),
                         "speedup": round(t_full / t_cache, 2),
                         "same_as_uncached": out_cache == out_full, "same_as_batch1": out_cache == ref})
    if args.json:
        print(json.dumps({"requests": len(items), "max_new_tokens": args.new, "rows": rows}, indent=1))
    else:
        print(f"{len(items)} requests, up to {args.new} new tokens, {args.threads} threads, {args.checkpoint}")
        print(f"{'batch':>5} {'cache tok/s':>12} {'no-cache tok/s':>15} {'speedup':>8}  identical outputs")
        for r in rows:
            same = "yes" if r["same_as_uncached"] and r["same_as_batch1"] else "NO"
            print(f"{r['batch']:>5} {r['cached_tokens_per_s']:>12} {r['uncached_tokens_per_s']:>15} "
                  f"{r['speedup']:>7}x  {same}")
    ok = all(r["same_as_uncached"] and r["same_as_batch1"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

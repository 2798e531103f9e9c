"""Model FLOP utilization of the reference model on this CPU, float32.

    python bench/bench_mfu.py [--checkpoint DIR | --preset default] [--batch 32] [--text 48] [--reps 3]

MFU = achieved model FLOP/s (tokens/s x matmul FLOPs per token, counted from the config by
`molmo_eval.reference_model.flops`) / the fp32 matmul rate of ``torch.mm`` measured in the same run
(2048 x 2048 products, before and after, mean). Three workloads at the same batch:

- ``forward``: one full forward pass over image + prefix + ``--text`` text tokens per row (prefill);
- ``train``: forward + backward + AdamW step (3x the forward FLOPs);
- ``generate``: batched greedy decoding with the KV cache (prefill + one FLOP count per new token).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from molmo_eval.reference_model import checkpoint
from molmo_eval.reference_model.config import preset
from molmo_eval.reference_model.flops import decode_step_flops, sequence_flops
from molmo_eval.reference_model.generate import generate
from molmo_eval.reference_model.model import MolmoModel


def mm_rate(n: int = 2048, reps: int = 8) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def timed(fn, reps: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def load(args: argparse.Namespace) -> MolmoModel:
    if args.checkpoint:
        return checkpoint.load(Path(args.checkpoint))[0]
    from molmo_eval.models.reference import bundled_checkpoint

    if args.preset is None and checkpoint.is_checkpoint(bundled_checkpoint()):
        return checkpoint.load(bundled_checkpoint())[0]
    torch.manual_seed(0)
    return MolmoModel(preset(args.preset or "default", vocab_size=600))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="checkpoint folder (default: the bundled one)")
    ap.add_argument("--preset", help="random weights of a preset instead of a checkpoint")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--text", type=int, default=48, help="text tokens per row")
    ap.add_argument("--new", type=int, default=8, help="new tokens per row for the generate workload")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args)
    cfg, B, T = model.cfg, args.batch, args.text
    g = torch.Generator().manual_seed(0)
    px = torch.rand(B, 3, cfg.image_size, cfg.image_size, generator=g)
    ids = torch.randint(300, cfg.vocab_size, (B, T), generator=g)
    seg = torch.ones(B, T, dtype=torch.long)
    fwd_flops = B * sequence_flops(cfg, T)
    peak = [mm_rate()]

    model.eval()
    with torch.no_grad():
        t_fwd = timed(lambda: model(px, ids, seg), args.reps)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)

    def step() -> None:
        _, loss = model(px, ids, seg, ids)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_train = timed(step, args.reps)
    model.eval()
    prompts = [[int(x) for x in row] + [3] for row in ids[:, :T - 1]]  # 3 = <answer>
    t_gen = timed(lambda: generate(model, px, prompts, max_new_tokens=args.new), args.reps)
    steps = max(len(o) for o in generate(model, px, prompts, max_new_tokens=args.new))
    gen_flops = fwd_flops + B * sum(decode_step_flops(cfg, cfg.prefix_len + T + k) for k in range(steps))
    peak.append(mm_rate())
    rate = sum(peak) / len(peak)
    tokens = B * (cfg.prefix_len + T)
    out = {
        "config": {"batch": B, "text_tokens": T, "prefix_tokens": cfg.prefix_len, "params": model.n_params(),
                   "threads": args.threads},
        "mm_gflops": round(rate / 1e9, 1),
        "forward": {"seconds": round(t_fwd, 4), "tokens_per_s": round(tokens / t_fwd, 1),
                    "gflops": round(fwd_flops / t_fwd / 1e9, 1), "mfu": round(fwd_flops / t_fwd / rate, 3)},
        "train": {"seconds": round(t_train, 4), "tokens_per_s": round(tokens / t_train, 1),
                  "gflops": round(3 * fwd_flops / t_train / 1e9, 1), "mfu": round(3 * fwd_flops / t_train / rate, 3)},
        "generate": {"seconds": round(t_gen, 4), "decode_steps": steps,
                     "gflops": round(gen_flops / t_gen / 1e9, 1), "mfu": round(gen_flops / t_gen / rate, 3)},
        "flops_per_token_forward": round(fwd_flops / tokens),
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"torch.mm fp32: {out['mm_gflops']} GFLOP/s ({args.threads} threads); batch {B}, "
              f"{cfg.prefix_len} prefix + {T} text tokens, {out['config']['params'] / 1e6:.2f}M params")
        for k in ("forward", "train", "generate"):
            v = out[k]
            print(f"  {k:<9} {v['seconds']:.3f} s  {v['gflops']:6.1f} GFLOP/s  MFU {100 * v['mfu']:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Model FLOP utilization of the reference model on this CPU, float32.

    python bench/bench_mfu.py [--checkpoint DIR | --preset default] [--batch 32] [--text 48] [--reps 3]

MFU = achieved model FLOP/s (tokens/s x matmul FLOPs per token, counted from the config by
`molmo_eval.reference_model.flops`) / the machine's fp32 matmul peak, measured in the same run: the
best of several large ``torch.mm`` products (1024 to 3072 square, each timed alone, before and after
the workloads). Should a workload ever run its FLOPs faster than that (a busy machine can slow the
probe), the workload's own rate is the peak, with a note, so MFU never reads above 100%. Three
workloads at the same batch:

- ``forward``: one full forward pass over image + prefix + ``--text`` text tokens per row (prefill);
- ``train``: forward + backward + AdamW step (3x the forward FLOPs);
- ``generate``: batched greedy decoding with the KV cache (prefill + one FLOP count per new token).
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
from molmo_eval.reference_model.config import preset  # noqa: E402
from molmo_eval.reference_model.flops import decode_step_flops, sequence_flops  # noqa: E402
from molmo_eval.reference_model.generate import generate  # noqa: E402
from molmo_eval.reference_model.model import MolmoModel  # noqa: E402

PROBE_SIZES = (1024, 2048, 3072)


def mm_peak(sizes: tuple[int, ...] = PROBE_SIZES, reps: int = 4) -> float:
    """The best fp32 FLOP/s of single large matrix products (each timed alone, the fastest kept)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter()
            a @ b
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t0))
    return best


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
    probe = mm_peak()

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
    probe = max(probe, mm_peak())
    tokens = B * (cfg.prefix_len + T)
    achieved = {"forward": fwd_flops / t_fwd, "train": 3 * fwd_flops / t_train, "generate": gen_flops / t_gen}
    rate = max(probe, *achieved.values())  # MFU <= 100% by construction; a note says when a workload set it
    out = {
        "config": {"batch": B, "text_tokens": T, "prefix_tokens": cfg.prefix_len, "params": model.n_params(),
                   "threads": args.threads},
        "mm_gflops": round(probe / 1e9, 1),
        "peak_gflops": round(rate / 1e9, 1),
        "forward": {"seconds": round(t_fwd, 4), "tokens_per_s": round(tokens / t_fwd, 1),
                    "gflops": round(achieved["forward"] / 1e9, 1), "mfu": round(achieved["forward"] / rate, 3)},
        "train": {"seconds": round(t_train, 4), "tokens_per_s": round(tokens / t_train, 1),
                  "gflops": round(achieved["train"] / 1e9, 1), "mfu": round(achieved["train"] / rate, 3)},
        "generate": {"seconds": round(t_gen, 4), "decode_steps": steps,
                     "gflops": round(achieved["generate"] / 1e9, 1), "mfu": round(achieved["generate"] / rate, 3)},
        "flops_per_token_forward": round(fwd_flops / tokens),
    }
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"fp32 matmul peak: {out['mm_gflops']} GFLOP/s (best single torch.mm of {', '.join(map(str, PROBE_SIZES))}"
              f" square, {args.threads} threads, load average {os.getloadavg()[0]:.2f}); batch {B}, "
              f"{cfg.prefix_len} prefix + {T} text tokens, {out['config']['params'] / 1e6:.2f}M params")
        if rate > probe:
            print(f"  note: a workload ran at {rate / 1e9:.1f} GFLOP/s, above the probe; it is the denominator")
        for k in ("forward", "train", "generate"):
            v = out[k]
            print(f"  {k:<9} {v['seconds']:.3f} s  {v['gflops']:6.1f} GFLOP/s  MFU {100 * v['mfu']:.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Three-stage training of the reference model: stages are data, run by one loop.

    stage 1 caption   PixMo-Cap-style captions; vision encoder frozen; loss on all text
    stage 2 instruct  question answering (+ some captions); loss on answer tokens only
    stage 3 pointing  pointing data mixed with the earlier data; whole model trainable,
                      vision at a lower learning rate

Each stage is a `StageConfig`; `train` runs them in order, each starting from the previous one's
weights, and writes ``OUT/stage<k>_<name>/`` (safetensors + JSON config + training_log.jsonl) when
the stage ends. ``OUT/state/`` holds full-precision weights, optimizer moments and data positions,
saved every ``save_every`` steps; a run started again with ``resume=True`` continues from it.

    python -m molmo_eval.reference_model.train --preset tiny --stages 1,2,3 --out /tmp/ref
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from . import checkpoint
from .config import ModelConfig, preset
from .data import Group, ListSource, Mixture, Source, WorldSource
from .model import MolmoModel
from .processing import Batch, collate
from .tokenizer import Tokenizer, split_words


@dataclass(frozen=True)
class StageConfig:
    number: int  # 1 caption, 2 instruct, 3 pointing (names the output folder)
    name: str
    steps: int
    batch_size: int  # images per step; each packs up to max_pairs of its examples
    lr: float  # connector and language model
    vision_lr: float  # 0 freezes the vision encoder
    mixture: dict[str, float]  # data source -> weight
    loss_on: str = "answer"  # "answer" (answer tokens + <eos>) or "text" (every text token)
    warmup: int = 50
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    max_len: int = 192  # text tokens per row
    max_pairs: int = 4  # examples packed per image
    objective: str = "lm"  # "lm": next-token loss; "patches": stage-0 dense patch labels (vision only)
    text_every: int = 0  # patches objective: every k-th scene is a text-rich one (0: none)
    word_weight: float = 1.0  # patches objective: weight of the sign-word loss
    glyphs: bool = True  # patches objective: also classify sign glyphs on the stem's half-resolution map


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig
    stages: tuple[StageConfig, ...]
    seed: int = 0
    pointing: bool = True
    threads: int = 2
    log_every: int = 10
    save_every: int = 100
    heldout: int = 0  # groups per world source scored after each stage (0: no held-out check)
    ask_per_scene: int = 8  # questions drawn per scene of the world's ask stream
    tagger: bool = True  # the encoder names what lies under each patch; its words join the visual tokens
    pool: int = 0  # scenes per world stream, cycled with new questions each pass (0: always new scenes)
    pools: dict[str, int] = field(default_factory=dict)  # stream -> its own pool, overriding `pool`
    cache_features: bool = True  # keep a frozen encoder's output per pooled image instead of recomputing it
    meta: dict[str, Any] = field(default_factory=dict)  # recorded in the checkpoints (preset, command...)


# --- stage plans ---------------------------------------------------------------------------------

def stage_plan(preset_name: str, *, pointing: bool = True, fraction: float = 1.0,
               stages: Sequence[int] = (1, 2, 3), bench: bool = False,
               vision_pretrain: bool = True) -> tuple[StageConfig, ...]:
    """The stages of a preset. Stage 1 is preceded by the encoder pre-training (stage 0, see
    `vision_pretrain`) unless ``vision_pretrain=False``. ``fraction`` scales the steps (the
    data-fraction ablation); ``bench`` adds the benchmark-format sources ``bench_ask`` /
    ``bench_point`` to stages 2 and 3."""
    steps, batch = _PLAN_SIZES[preset_name]
    # (pointing data in stage 2 as well, as Molmo's fine-tuning mixture has, was tried: RefCOCO val
    # point-in-box fell from 29 to 22 and PointQA F1 from 21 to 16, with POPE up 1-3 points)
    ask = {"ask": 0.5, "cap": 0.15} | ({"bench_ask": 0.35} if bench else {})
    # stage 3 keeps most of stage 2's data: with point data alone (0.35 of rows at lr 1e-3) the
    # held-out question accuracy fell from 0.43 after stage 2 to 0.26 after stage 3
    point = {"point": 0.3, "ask": 0.25, "cap": 0.05} | ({"bench_ask": 0.2, "bench_point": 0.2} if bench else {})
    if not pointing:
        point = {k: v for k, v in point.items() if k not in ("point", "bench_point")}
    # v3: the encoder is frozen after stage 0 (its features are cached per pooled image, ~4x the
    # answers per second); stage 0 trains category and colour only (word and glyph targets cost
    # 10 points of category accuracy in the pilots, docs/reference-model.md)
    all_stages = (
        StageConfig(0, "vision", steps[0], 2 * batch, lr=2e-3, vision_lr=2e-3, mixture={"scenes": 1.0},
                    objective="patches", warmup=20, word_weight=0.0, glyphs=False),
        StageConfig(1, "caption", steps[1], batch, lr=2e-3, vision_lr=0.0, mixture={"cap": 1.0}, loss_on="text",
                    max_pairs=1),
        StageConfig(2, "instruct", steps[2], batch, lr=1.5e-3, vision_lr=0.0, mixture=ask, max_pairs=8),
        StageConfig(3, "pointing", steps[3], batch, lr=7e-4, vision_lr=0.0, mixture=point, max_pairs=8),
    )
    wanted = set(stages) | ({0} if vision_pretrain and 1 in stages else set())
    return tuple(replace(s, steps=max(1, round(s.steps * fraction))) for s in all_stages if s.number in wanted)


_PLAN_SIZES: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "tiny": ((4, 4, 4, 4), 2),
    "small": ((200, 200, 600, 600), 16),
    "default": ((600, 300, 1600, 1000), 16),
}

# scenes per world stream (TrainConfig.pool): a pool small enough that the frozen encoder's features
# are computed once per scene and reused as the stream cycles with new questions
POOL: dict[str, int] = {"tiny": 0, "small": 2000, "default": 4000}


# --- vocabulary ----------------------------------------------------------------------------------

def build_tokenizer(extra_texts: Sequence[str] = ()) -> Tokenizer:
    """The world's words, the numbers 0..100, and every word of ``extra_texts``."""
    from .world import training

    try:
        words = [w for w in training.words() if not w.isdigit()]
    except ImportError:  # a world without a word list: read a sample of every stream
        words = [w for name in ("cap", "ask", "point") for e in itertools.islice(training.STREAMS[name](0), 300)
                 for t in (e.prompt, e.answer) for w in split_words(t)]
    return Tokenizer.from_texts(extra_texts, extra_words=words + [str(n) for n in range(101)])


# --- the loop ------------------------------------------------------------------------------------

def lr_at(step: int, stage: StageConfig) -> float:
    """Multiplier of the base learning rates: linear warmup, then cosine to min_lr_ratio."""
    if step < stage.warmup:
        return (step + 1) / stage.warmup
    t = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return stage.min_lr_ratio + (1 - stage.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def make_optimizer(model: MolmoModel, stage: StageConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parts; the vision encoder frozen (requires_grad=False) when its lr is 0.
    Weight decay on matrices only (not on norms, biases, position tables)."""
    groups = []
    # the pointer is not decayed: before stage 3 it gets no gradient and must stay as initialised
    keep = {id(p) for p in (model.pointer.parameters() if model.pointer is not None else ())}
    for part, params in model.parts().items():
        lr = stage.vision_lr if part == "vision" else stage.lr
        for p in params:
            p.requires_grad_(lr > 0)
        if lr <= 0:
            continue
        decay = [p for p in params if p.ndim == 2 and p is not getattr(model.vision, "row", None)
                 and p is not getattr(model.vision, "col", None) and id(p) not in keep]
        ids = {id(p) for p in decay}
        rest = [p for p in params if id(p) not in ids]
        groups.append({"params": decay, "lr": lr, "base_lr": lr, "weight_decay": stage.weight_decay})
        groups.append({"params": rest, "lr": lr, "base_lr": lr, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, betas=(0.9, 0.95), eps=1e-8, foreach=True)


def train_step(model: MolmoModel, opt: torch.optim.Optimizer, batch: Batch, stage: StageConfig,
               step: int, feats: torch.Tensor | None = None) -> float:
    mult = lr_at(step, stage)
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * mult
    model.train()
    _, loss = model(batch.pixels, batch.ids, batch.seg, batch.targets, feats=feats)
    assert loss is not None
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], stage.grad_clip)
    opt.step()
    return float(loss.detach())


class FeatureCache:
    """A frozen vision encoder's output per image key (float16), computed on an image's first use:
    pooled scenes and benchmark-format images come back many times, and the encoder's forward pass
    costs about half as much as a training step of the language model."""

    def __init__(self, model: MolmoModel):
        self.model, self.store = model, {}

    def features(self, groups: Sequence[Group]) -> torch.Tensor:
        """(B, G*G, Dv) encoder features of the groups' images."""
        from .processing import image_tensor

        missing = [i for i, g in enumerate(groups) if g.key not in self.store]
        fresh = {}
        if missing:
            with torch.no_grad():
                px = image_tensor([groups[i].image for i in missing], self.model.cfg.image_size)
                for i, f in zip(missing, self.model.vision(px)):
                    fresh[i] = f
                    if groups[i].key:
                        self.store[groups[i].key] = f.half()
        return torch.stack([fresh[i] if i in fresh else self.store[g.key].float() for i, g in enumerate(groups)])


def run_stage(stage: StageConfig, model: MolmoModel, tok: Tokenizer, sources: dict[str, Source],
              cfg: TrainConfig, out: Path, resume_info: dict[str, Any] | None,
              opt: torch.optim.AdamW, cache: FeatureCache | None = None) -> None:
    k, start = stage.number, resume_info["step"] if resume_info else 0
    mix = Mixture(sources, stage.mixture, seed=hash_seed(cfg.seed, k),
                  positions=resume_info["positions"] if resume_info else None)
    stage_dir = out / f"stage{k}_{stage.name}"
    stage_dir.mkdir(parents=True, exist_ok=True)
    log = open_log(stage_dir / "training_log.jsonl", start)
    bar = ProgressBar(f"stage {k} {stage.name}", stage.steps, start)
    t_start, n_seen, losses = time.perf_counter(), 0, []
    elapsed0 = resume_info.get("elapsed", 0.0) if resume_info else 0.0
    for step in range(start, stage.steps):
        groups = mix.batch(step, stage.batch_size)
        cached = cache is not None and stage.vision_lr <= 0
        batch = collate(tok, [(g.image, g.pairs[:stage.max_pairs]) for g in groups], model.cfg.image_size,
                        stage.loss_on, stage.max_len, pixels=not cached)
        feats = cache.features(groups) if cached else None
        losses.append(train_step(model, opt, batch, stage, step, feats))
        n_seen += batch.n_examples
        rate = n_seen / (time.perf_counter() - t_start)
        bar.update(step + 1, losses[-1], rate)
        if (step + 1) % cfg.log_every == 0 or step + 1 == stage.steps:
            entry = {"step": step + 1, "loss": round(sum(losses) / len(losses), 5), "lr_mult": round(lr_at(step, stage), 5),
                     "examples_per_s": round(rate, 2), "elapsed_s": round(elapsed0 + time.perf_counter() - t_start, 1)}
            log.write(json.dumps(entry) + "\n")
            log.flush()
            losses = []
        if (step + 1) % cfg.save_every == 0 and step + 1 < stage.steps:
            checkpoint.save_state(out / "state", model, opt, {
                "stage": k, "step": step + 1, "positions": dict(mix.positions),
                "elapsed": elapsed0 + time.perf_counter() - t_start})
    bar.close()
    log.close()
    meta = {**cfg.meta, "stage": k, "stage_name": stage.name, "stage_config": asdict(stage),
            "seed": cfg.seed, "pointing": cfg.pointing,
            "train_seconds": round(elapsed0 + time.perf_counter() - t_start, 1)}
    if cfg.heldout:
        meta["heldout"] = stage_heldout(model, tok, stage, cfg)
        print(f"stage {k} held-out accuracy: {json.dumps(meta['heldout'])}", file=sys.stderr)
    checkpoint.save(model, tok, stage_dir, meta)
    checkpoint.save_state(out / "state", model, opt, {"stage": k, "step": stage.steps, "done": True,
                                                      "positions": dict(mix.positions)})


def train(cfg: TrainConfig, out: Path, *, extra: dict[str, Sequence[Group]] | None = None,
          tokenizer: Tokenizer | None = None, resume: bool = False, init: Path | None = None) -> Path:
    """Run ``cfg.stages`` in order; returns the last stage's checkpoint directory.

    ``extra``: additional named sources (lists of groups) that stage mixtures may name.
    ``init``: start from this checkpoint's weights (e.g. a stage-1 checkpoint for stages 2, 3)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    sources = make_sources(cfg, extra or {})
    tok_file = out / "tokenizer.json"
    if init is not None:
        model, tok, _ = checkpoint.load(init)
    else:
        if resume and tok_file.is_file():
            tok = Tokenizer.from_json(json.loads(tok_file.read_text()))
        else:
            tok = tokenizer or build_tokenizer([t for g in (extra or {}).values() for x in g for t in _texts(x)])
        from .vision_pretrain import tag_sizes, tag_words

        model = MolmoModel(replace(cfg.model, vocab_size=len(tok), tags=tag_sizes() if cfg.tagger else ()))
        if cfg.tagger:
            model.set_tag_words(tag_words(tok))
    tok_file.write_text(json.dumps(tok.to_json()) + "\n")
    (out / "train_config.json").write_text(json.dumps(_jsonable(cfg), indent=1) + "\n")
    state = _peek_state(out) if resume else None
    cache = FeatureCache(model) if cfg.cache_features else None
    for stage in cfg.stages:
        k = stage.number
        if state is not None and (state["stage"] > k or (state["stage"] == k and state.get("done"))):
            continue  # finished before the interruption
        if stage.objective == "patches":  # not resumable mid-stage: a short stage, restarted
            if state is not None and state["stage"] < k:
                checkpoint.load_state(out / "state", model, None)
            state = None
            run_patch_stage(stage, model, tok, cfg, out)
            if cache is not None:
                cache.store.clear()  # the encoder changed
            continue
        opt = make_optimizer(model, stage)
        info = None
        if state is not None:  # mid-stage k, or the end of an earlier stage
            loaded = checkpoint.load_state(out / "state", model, opt if state["stage"] == k else None)
            info = loaded if state["stage"] == k else None
            state = None
        run_stage(stage, model, tok, sources, cfg, out, info, opt, cache)
        if cache is not None and stage.vision_lr > 0:
            cache.store.clear()  # the encoder changed
    return out / f"stage{cfg.stages[-1].number}_{cfg.stages[-1].name}"


def run_patch_stage(stage: StageConfig, model: MolmoModel, tok: Tokenizer, cfg: TrainConfig, out: Path) -> None:
    """Stage 0: the vision encoder and a throw-away PatchHead on dense scene labels."""
    from . import vision_pretrain as vp
    from .vision import PatchHead

    # the model's own tagger, or a throw-away head when the model has none
    tagger = model.vision.head if model.vision.head is not None else PatchHead(model.cfg.vit_dim, vp.tag_sizes())
    head = vp.CharHead(model.cfg.stem[-1]) if stage.glyphs else None
    params = list(model.vision.parameters()) + (list(head.parameters()) if head is not None else [])
    params += [] if tagger is model.vision.head else list(tagger.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": params, "lr": stage.lr, "base_lr": stage.lr}], betas=(0.9, 0.95),
                            weight_decay=stage.weight_decay, foreach=True)
    source = vp.SceneSource(hash_seed(cfg.seed, stage.number), model.cfg.grid, stage.text_every).groups(0)
    stage_dir = out / f"stage{stage.number}_{stage.name}"
    stage_dir.mkdir(parents=True, exist_ok=True)
    log = open_log(stage_dir / "training_log.jsonl", 0)
    bar = ProgressBar(f"stage {stage.number} {stage.name}", stage.steps)
    t0, losses, stats = time.perf_counter(), [], {}
    model.train()
    for step in range(stage.steps):
        pixels, labels, chars = vp.patch_batch([next(source) for _ in range(stage.batch_size)], model.cfg)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_at(step, stage)
        loss = vp.patch_loss(model.vision, tagger, head, pixels, labels, chars, stats, stage.word_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
        opt.step()
        losses.append(float(loss.detach()))
        rate = (step + 1) * stage.batch_size / (time.perf_counter() - t0)
        bar.update(step + 1, losses[-1], rate)
        if (step + 1) % cfg.log_every == 0 or step + 1 == stage.steps:
            acc = {f"{k}_accuracy": round(sum(v) / len(v), 4) for k, v in stats.items()}  # object / sign patches
            log.write(json.dumps({"step": step + 1, "loss": round(sum(losses) / len(losses), 5), **acc,
                                  "lr_mult": round(lr_at(step, stage), 5), "images_per_s": round(rate, 2),
                                  "elapsed_s": round(time.perf_counter() - t0, 1)}) + "\n")
            log.flush()
            losses, stats = [], {}
    bar.close()
    log.close()
    meta = {**cfg.meta, "stage": stage.number, "stage_name": stage.name, "stage_config": asdict(stage),
            "seed": cfg.seed, "train_seconds": round(time.perf_counter() - t0, 1)}
    checkpoint.save(model, tok, stage_dir, meta)
    checkpoint.save_state(out / "state", model, opt_placeholder(model), {"stage": stage.number,
                                                                         "step": stage.steps, "done": True})


def opt_placeholder(model: MolmoModel) -> torch.optim.Optimizer:
    """An optimizer without moments, for saving weights-only training state."""
    return torch.optim.AdamW(model.parameters())


def open_log(path: Path, start: int) -> Any:
    """The stage's log, keeping only the entries up to ``start`` when resuming."""
    kept = []
    if start and path.is_file():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= start]
    f = open(path, "w")
    f.writelines(line + "\n" for line in kept)
    return f


def stage_heldout(model: MolmoModel, tok: Tokenizer, stage: StageConfig, cfg: TrainConfig) -> dict[str, float]:
    """Accuracy on unseen world scenes of the stage's question sources (captions are not scored)."""
    from .evaluate import heldout, world_groups

    names = [n for n in ("ask", "point") if stage.mixture.get(n, 0) > 0]
    groups = [g for n in names for g in world_groups(n, cfg.heldout)]
    if not groups:
        return {}
    return {k: round(v, 4) for k, v in heldout(model, tok, groups).items()}


def make_sources(cfg: TrainConfig, extra: dict[str, Sequence[Group]]) -> dict[str, Source]:
    sources: dict[str, Source] = {n: WorldSource(n, cfg.seed, cfg.pointing, pool=_pool(cfg, n))
                                  for n in ("cap", "point")}
    sources["ask"] = WorldSource("ask", cfg.seed, cfg.pointing, per_scene=cfg.ask_per_scene, pool=_pool(cfg, "ask"))
    sources.update(ablation_sources(cfg))
    for name, items in extra.items():
        sources[name] = ListSource(name, items, cfg.seed, cfg.pointing)
    return sources


def ablation_sources(cfg: TrainConfig) -> dict[str, Source]:
    """Grid hook: the world's other streams (``cap_noisy`` web captions, ``refer_text`` referring
    answers in plain text), which only the harness's ablation grid names in a mixture."""
    from .world import training

    return {n: WorldSource(n, cfg.seed, cfg.pointing, pool=_pool(cfg, n)) for n in training.STREAMS
            if n not in ("cap", "ask", "point")}


def _pool(cfg: TrainConfig, stream: str) -> int:
    return cfg.pools.get(stream, cfg.pool)


def hash_seed(seed: int, k: int) -> int:
    return seed * 1000 + k


def _peek_state(out: Path) -> dict[str, Any] | None:
    p = out / "state" / checkpoint.STATE_JSON
    return json.loads(p.read_text()) if p.is_file() else None


def _texts(g: Group) -> list[str]:
    return [t for pair in g.pairs for t in pair]


def _jsonable(cfg: TrainConfig) -> dict[str, Any]:
    return {"model": cfg.model.to_json(), "stages": [asdict(s) for s in cfg.stages], "seed": cfg.seed,
            "pointing": cfg.pointing, "threads": cfg.threads, "ask_per_scene": cfg.ask_per_scene,
            "tagger": cfg.tagger, "pool": cfg.pool, "pools": cfg.pools, "cache_features": cfg.cache_features,
            "meta": cfg.meta}


# --- progress -------------------------------------------------------------------------------------

class ProgressBar:
    """One line on stderr: stage, step, loss, examples/s, time left (a new line per update when
    stderr is not a terminal, at most every 10 s)."""

    def __init__(self, label: str, total: int, start: int = 0, stream: Any = None):
        self.label, self.total, self.stream = label, total, stream or sys.stderr
        self.t0, self.start = time.perf_counter(), start
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last_print = 0.0

    def update(self, step: int, loss: float, rate: float) -> None:
        now = time.perf_counter()
        if not self.tty and now - self.last_print < 10 and step < self.total:
            return
        self.last_print = now
        per_step = (now - self.t0) / max(1, step - self.start)
        left = per_step * (self.total - step)
        width = 24
        filled = int(width * step / max(1, self.total))
        line = (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} "
                f"loss {loss:.3f} {rate:.1f} ex/s eta {int(left // 60)}:{int(left % 60):02d}")
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --- command line (standalone; the harness has `molmo-eval train`) ------------------------------

def main(argv: Sequence[str] | None = None,
         extra_fn: Callable[[TrainConfig], dict[str, Sequence[Group]]] | None = None) -> int:
    ap = argparse.ArgumentParser(description="train the reference Molmo model (world data only)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--stages", default="1,2,3")
    ap.add_argument("--data-fraction", type=float, default=1.0)
    ap.add_argument("--pointing", choices=("on", "off"), default="on")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    stages = tuple(int(s) for s in a.stages.split(","))
    cfg = TrainConfig(preset(a.preset, pointing_head=False),
                      stage_plan(a.preset, pointing=a.pointing == "on", fraction=a.data_fraction, stages=stages),
                      seed=a.seed, pointing=a.pointing == "on", meta={"preset": a.preset})
    train(cfg, a.out, resume=a.resume)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

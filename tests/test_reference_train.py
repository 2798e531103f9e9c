"""The reference model's trainer: schedule, freezing, data mixture, a smoke run, resume."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from molmo_eval.reference_model import checkpoint  # noqa: E402
from molmo_eval.reference_model import train as rt  # noqa: E402
from molmo_eval.reference_model import vision_pretrain as vp  # noqa: E402
from molmo_eval.reference_model.config import preset  # noqa: E402
from molmo_eval.reference_model.data import Group, ListSource, Mixture, without_points  # noqa: E402
from molmo_eval.reference_model.model import MolmoModel  # noqa: E402
from molmo_eval.reference_model.processing import collate  # noqa: E402
from molmo_eval.reference_model.tokenizer import Tokenizer  # noqa: E402


def _groups(n: int, seed: int = 0) -> list[Group]:
    """Small synthetic groups: the answer is the colour of a flat image (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 200, 30)}
    out = []
    for _ in range(n):
        name = list(colours)[int(rng.integers(3))]
        img = np.zeros((24, 24, 3), np.uint8) + np.array(colours[name], np.uint8)
        out.append(Group(img, (("what color is it ?", name), ("is it red ?", "yes" if name == "red" else "no"),
                               ("Point to it", "<point> <x_50> <y_50>")), ("ask", "ask", "point")))
    return out


WORDS = ("what", "color", "is", "it", "?", "red", "blue", "green", "yes", "no", "Point", "to")


def _cfg(stages: tuple[rt.StageConfig, ...], **kw) -> rt.TrainConfig:
    return rt.TrainConfig(preset("tiny"), stages, seed=0, threads=1, log_every=1, save_every=kw.pop("save_every", 1000), **kw)


def _stage(number: int = 2, steps: int = 12, **kw) -> rt.StageConfig:
    base = dict(number=number, name="instruct", steps=steps, batch_size=4, lr=3e-3, vision_lr=1e-3,
                mixture={"toy": 1.0}, warmup=2)
    return rt.StageConfig(**(base | kw))


def test_lr_schedule_warms_up_then_follows_the_cosine():
    s = _stage(steps=110, warmup=10, min_lr_ratio=0.1)
    assert rt.lr_at(0, s) == pytest.approx(0.1)
    assert rt.lr_at(9, s) == pytest.approx(1.0)
    assert rt.lr_at(10, s) == pytest.approx(1.0)
    assert rt.lr_at(60, s) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert rt.lr_at(110, s) == pytest.approx(0.1)


def test_training_smoke_loss_goes_down(tmp_path):
    out = rt.train(_cfg((_stage(steps=25),)), tmp_path, extra={"toy": _groups(40)}, tokenizer=Tokenizer(WORDS))
    log = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == list(range(1, 26))
    first, last = np.mean([e["loss"] for e in log[:3]]), np.mean([e["loss"] for e in log[-3:]])
    assert first > math.log(len(Tokenizer(WORDS))) - 1.5 and last < 0.6 * first, (first, last)
    assert checkpoint.is_checkpoint(out)
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["stage"] == 2 and meta["stage_config"]["steps"] == 25


def test_frozen_vision_stays_frozen_while_the_rest_trains():
    torch.manual_seed(0)
    tok = Tokenizer(WORDS)
    m = MolmoModel(preset("tiny", vocab_size=len(tok)))
    stage = _stage(number=1, vision_lr=0.0, loss_on="text")
    opt = rt.make_optimizer(m, stage)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    for step in range(3):
        rows = [(g.image, g.pairs) for g in _groups(4, seed=step)]
        rt.train_step(m, opt, collate(tok, rows, m.cfg.image_size, "text", 64), stage, step)
    after = m.state_dict()
    vision = [k for k in before if k.startswith("vision.")]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    assert not all(p.requires_grad for p in m.vision.parameters())
    for part in ("connector.", "decoder.", "embed."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part


def test_stage_two_trains_vision_at_its_own_learning_rate():
    torch.manual_seed(0)
    m = MolmoModel(preset("tiny", vocab_size=40))
    opt = rt.make_optimizer(m, _stage(lr=1e-3, vision_lr=2e-4))
    vision_ids = {id(p) for p in m.vision.parameters()}
    lrs = {g["lr"] for g in opt.param_groups if any(id(p) in vision_ids for p in g["params"])}
    others = {g["lr"] for g in opt.param_groups if not any(id(p) in vision_ids for p in g["params"])}
    assert lrs == {2e-4} and others == {1e-3}
    assert all(p.requires_grad for p in m.parameters())


def test_mixture_is_seeded_and_balanced():
    items = {n: ListSource(n, [Group(np.zeros((2, 2, 3), np.uint8), ((n, str(i)),)) for i in range(5)], seed=1)
             for n in ("a", "b")}
    picks = [g.pairs[0][0] for s in range(200) for g in Mixture(items, {"a": 3.0, "b": 1.0}, 7).batch(s, 4)]
    assert abs(picks.count("a") / len(picks) - 0.75) < 0.05
    m1, m2 = Mixture(items, {"a": 1.0, "b": 1.0}, 7), Mixture(items, {"a": 1.0, "b": 1.0}, 7)
    assert [g.pairs for s in range(5) for g in m1.batch(s, 3)] == [g.pairs for s in range(5) for g in m2.batch(s, 3)]
    # resuming from saved positions continues the same sequence
    m3 = Mixture(items, {"a": 1.0, "b": 1.0}, 7)
    first = [m3.batch(s, 3) for s in range(2)]
    m4 = Mixture(items, {"a": 1.0, "b": 1.0}, 7, positions=dict(m3.positions))
    assert [g.pairs for g in m4.batch(2, 3)] == [g.pairs for g in m3.batch(2, 3)]
    assert first
    with pytest.raises(ValueError, match="unknown data source"):
        Mixture(items, {"c": 1.0}, 0)


def test_pointing_off_drops_every_point_pair():
    g = _groups(1)[0]
    kept = without_points(g)
    assert kept is not None and all("<point>" not in p + a for p, a in kept.pairs) and len(kept.pairs) == 2
    only_points = Group(g.image, (("Point to it", "<point> <x_1> <y_2>"),))
    assert without_points(only_points) is None
    plan = rt.stage_plan("default", pointing=False, bench=True)
    assert all("point" not in s.mixture and "bench_point" not in s.mixture for s in plan)
    assert [s.number for s in plan] == [0, 1, 2, 3] and plan[0].objective == "patches"
    # v3: the encoder trains in stage 0 only, so the later stages can reuse its cached features
    assert plan[0].vision_lr > 0 and all(s.vision_lr == 0 for s in plan[1:])
    assert plan[0].word_weight == 0 and not plan[0].glyphs
    assert [s.number for s in rt.stage_plan("default", vision_pretrain=False)] == [1, 2, 3]
    assert [s.number for s in rt.stage_plan("default", stages=(2, 3))] == [2, 3]


def test_stage_plan_fraction_and_selection():
    full = rt.stage_plan("small")
    half = rt.stage_plan("small", fraction=0.5, stages=(2, 3))
    assert [s.number for s in half] == [2, 3]
    assert [s.steps for s in half] == [round(s.steps * 0.5) for s in full if s.number in (2, 3)]


def test_resume_continues_to_the_same_weights(tmp_path, monkeypatch):
    stages = (_stage(number=1, steps=4, vision_lr=0.0), _stage(number=2, steps=6))
    cfg = _cfg(stages, save_every=2)
    extra = {"toy": _groups(30)}
    straight = rt.train(cfg, tmp_path / "a", extra=extra, tokenizer=Tokenizer(WORDS))

    real_step, calls = rt.train_step, {"n": 0}

    def crash_after_seven(*a, **k):
        calls["n"] += 1
        if calls["n"] > 7:  # stage 1 done (4 steps), stage 2 interrupted after 3 of its 6 steps
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(rt, "train_step", crash_after_seven)
    with pytest.raises(KeyboardInterrupt):
        rt.train(cfg, tmp_path / "b", extra=extra, tokenizer=Tokenizer(WORDS))
    monkeypatch.setattr(rt, "train_step", real_step)
    state = json.loads((tmp_path / "b" / "state" / "train_state.json").read_text())
    assert (state["stage"], state["step"]) == (2, 2)
    resumed = rt.train(cfg, tmp_path / "b", extra=extra, resume=True)
    a, _, _ = checkpoint.load(straight)
    b, _, _ = checkpoint.load(resumed)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, rtol=0, atol=1e-6, msg=k)
    log = [json.loads(x)["step"] for x in (resumed / "training_log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3, 4, 5, 6]


def test_world_source_groups_examples_of_one_scene():
    from molmo_eval.reference_model.data import WorldSource

    it = WorldSource("ask", seed=3).groups(0)
    g = next(it)
    assert 1 <= len(g.pairs) <= 4 and g.image.dtype == np.uint8 and g.image.ndim == 3
    again = next(WorldSource("ask", seed=3).groups(0))
    assert again.pairs == g.pairs and np.array_equal(again.image, g.image)
    second = next(WorldSource("ask", seed=3).groups(1))
    assert second.pairs == next(it).pairs


def test_held_out_check_scores_exact_answers_and_points():
    from molmo_eval.reference_model.evaluate import answer_ok, points_match

    assert answer_ok("Red", "red") and not answer_ok("red ball", "red")
    assert points_match("<point> <x_10> <y_20> <point> <x_50> <y_50>", "<point> <x_52> <y_47> <point> <x_12> <y_18>")
    assert not points_match("<point> <x_10> <y_20>", "<point> <x_10> <y_20> <point> <x_50> <y_50>")
    assert not points_match("<point> <x_10> <y_20>", "<point> <x_16> <y_20>")
    assert points_match("There are none.", "There are none.")


@pytest.mark.slow
def test_tiny_three_stage_run_on_world_data(tmp_path):
    plan = tuple(replace(s, steps=3, batch_size=2) for s in rt.stage_plan("tiny"))
    out = rt.train(rt.TrainConfig(preset("tiny"), plan, heldout=2, threads=1), tmp_path)
    assert out.name == "stage3_pointing" and checkpoint.is_checkpoint(out)
    assert json.loads((out / "config.json").read_text())["meta"]["heldout"]


def test_patch_labels_name_what_covers_each_patch_centre():
    from molmo_eval.reference_model.vision_pretrain import IGNORE, label_names, patch_labels
    from molmo_eval.reference_model.world.rng import train_scene_id
    from molmo_eval.reference_model.world.scene import make_scene

    cats, cols, words = label_names()
    scene = make_scene(train_scene_id(5, "test", 0))
    grid = 16
    labels = patch_labels(scene, grid)
    for r in range(grid):
        for c in range(grid):
            x = min(int((c + 0.5) * scene.width / grid), scene.width - 1)
            y = min(int((r + 0.5) * scene.height / grid), scene.height - 1)
            under = [o for o in scene.objects if o.mask[y, x]]
            want = under[-1] if under else None
            assert cats[labels[0, r, c]] == (want.category if want else "background")
            assert cols[labels[1, r, c]] == (want.colour if want else "none")
            if want is not None and want.category == "sign":
                assert words[labels[2, r, c]] == want.text
            else:
                assert labels[2, r, c] == IGNORE


def test_vision_pretraining_stage_trains_only_the_encoder(tmp_path):
    st = rt.StageConfig(0, "vision", 3, 2, lr=1e-3, vision_lr=1e-3, mixture={"scenes": 1.0}, objective="patches",
                        warmup=1)
    torch.manual_seed(0)
    tok = Tokenizer(WORDS)
    before_model = MolmoModel(preset("tiny", vocab_size=len(tok), tags=vp.tag_sizes()))
    before_model.set_tag_words(vp.tag_words(tok))
    before = before_model.state_dict()
    out = rt.train(_cfg((st,)), tmp_path, tokenizer=tok)
    after, _, meta = checkpoint.load(out)
    sd = after.state_dict()
    assert meta["stage"] == 0
    assert any(not torch.allclose(before[k], sd[k], atol=1e-3) for k in sd if k.startswith("vision."))
    assert all(torch.allclose(before[k], sd[k], atol=1e-3) for k in sd if not k.startswith("vision."))


def test_training_is_deterministic_on_the_tiny_preset(tmp_path):
    """The same command gives the same weights: every stage (0-3) of the tiny preset, with pooled
    world scenes and the frozen encoder's feature cache, trained twice into two folders."""
    plan = tuple(replace(s, steps=2, batch_size=2, warmup=1) for s in rt.stage_plan("tiny"))
    cfg = rt.TrainConfig(preset("tiny"), plan, threads=1, pool=3)
    first = rt.train(cfg, tmp_path / "a")
    second = rt.train(cfg, tmp_path / "b")
    a, b = (p / "model.safetensors" for p in (first, second))
    assert first.name == "stage3_pointing"
    assert a.read_bytes() == b.read_bytes()
    # and the runs did train: stage 3 moved the language model away from stage 2
    s2, _, _ = checkpoint.load(tmp_path / "a" / "stage2_instruct")
    s3, _, _ = checkpoint.load(first)
    lm = [k for k in s3.state_dict() if k.startswith("decoder.")]
    assert lm and any(not torch.equal(s2.state_dict()[k], s3.state_dict()[k]) for k in lm)

"""Training streams of the synthetic world: PixMo-like examples, point syntax, sharding, vocabulary."""

from __future__ import annotations

import math
import re
from itertools import islice

import numpy as np
import pytest

from molmo_eval.reference_model.world import training
from molmo_eval.reference_model.world.rng import EVAL_BASE
from molmo_eval.reference_model.world.scene import make_scene

POINT_RE = re.compile(r"<point> <x_(\d+)> <y_(\d+)>")


@pytest.mark.parametrize("name", ["cap", "ask", "point"])
def test_streams_yield_well_formed_examples_from_training_scenes(name: str) -> None:
    examples = list(islice(training.STREAMS[name](seed=3), 30))
    assert len(examples) == 30
    for ex in examples:
        assert isinstance(ex, training.Example)
        assert ex.image.dtype == np.uint8 and ex.image.ndim == 3 and ex.image.shape[2] == 3
        assert 192 <= ex.image.shape[0] <= 256 and 192 <= ex.image.shape[1] <= 256
        assert ex.prompt and ex.answer and ex.kind.split("/")[0] == name
        assert ex.scene_id < EVAL_BASE
        with pytest.raises(AttributeError):
            ex.answer = "x"  # type: ignore[misc]


def test_point_answers_use_the_bins_of_the_target_points() -> None:
    seen_none = seen_multi = 0
    for ex in islice(training.point_stream(seed=1), 200):
        h, w = ex.image.shape[:2]
        bins = [(int(a), int(b)) for a, b in POINT_RE.findall(ex.answer)]
        if ex.kind in ("point/single", "point/multi", "point/count"):
            expect = sorted((min(99, math.floor(100 * x / w)), min(99, math.floor(100 * y / h)))
                            for x, y in ex.points)
            assert sorted(bins) == expect
            seen_multi += len(ex.points) > 1
        if ex.kind == "point/none":
            assert ex.answer == "There are none." and not ex.points
            seen_none += 1
        if ex.kind == "point/count":
            n = len(ex.points)
            assert ex.answer.endswith("There are none." if n == 0 else f"There {'is' if n == 1 else 'are'} {n}.")
    assert seen_none and seen_multi


def test_point_text_bins_and_order() -> None:
    assert training.point_text([(0.0, 223.9), (223.99, 0.5)], 224, 224) == "<point> <x_0> <y_99> <point> <x_99> <y_0>"
    assert training.point_text([(112.0, 56.0)], 224, 112) == "<point> <x_50> <y_50>"
    assert training.point_bin(-3.0, 100) == 0 and training.point_bin(100.0, 100) == 99


def test_streams_shard_and_resume_exactly() -> None:
    full = list(islice(training.caption_stream(seed=5), 6))
    odd = list(islice(training.caption_stream(seed=5, start=1, step=2), 3))
    assert [e.answer for e in odd] == [e.answer for e in full[1::2]]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(odd, full[1::2], strict=True))
    other = list(islice(training.caption_stream(seed=6), 6))
    assert [e.answer for e in other] != [e.answer for e in full]


def test_mixture_follows_its_weights() -> None:
    kinds = [e.kind.split("/")[0] for e in islice(training.mixture_stream({"ask": 3, "point": 1}, seed=2), 400)]
    share = kinds.count("ask") / len(kinds)
    assert "cap" not in kinds and 0.65 < share < 0.85


def test_a_million_examples_are_addressable_without_storage() -> None:
    ex = next(training.ask_stream(seed=0, start=1_000_000))
    assert ex.scene_id < EVAL_BASE and ex.answer


def test_ask_stream_balances_yes_and_no() -> None:
    answers = [e.answer for e in islice(training.ask_stream(seed=4), 600)]
    yes, no = answers.count("yes"), answers.count("no")
    assert yes + no > 60 and 0.35 < yes / (yes + no) < 0.65


def test_every_generated_token_is_in_the_vocabulary(tmp_path) -> None:
    vocab = set(training.words())
    specials = set(training.point_tokens())
    assert len(specials) == 201 and not specials & vocab
    texts = []
    for name in ("cap", "ask", "point"):
        texts += [t for e in islice(training.STREAMS[name](seed=9), 150) for t in (e.prompt, e.answer)]
    from molmo_eval.reference_model.world.world import WorldSize, write_world

    write_world(tmp_path, WorldSize(vqav2=8, textvqa=8, gqa=8, refer=3, pope=4, mmbench=20, pointqa=20), seed=2,
                benchmarks=["vqav2", "gqa", "refer", "pointqa"])
    import json
    import pickle

    texts += [q["question"] for q in json.loads(
        (tmp_path / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json").read_text())["questions"]]
    texts += [q["question"] for q in json.loads((tmp_path / "gqa/testdev_balanced_questions.json").read_text()).values()]
    for name in ("refcoco", "refcocog"):
        refs = pickle.loads((tmp_path / f"refer/{name}/refs({'unc' if name == 'refcoco' else 'umd'}).p").read_bytes())
        texts += [s["raw"] for r in refs for s in r["sentences"]]
    texts += [json.loads(line)["question"] for line in (tmp_path / "pointqa/pixmo_points_eval.jsonl").open()]
    missing = {tok for t in texts for tok in training.tokenize(t) if tok not in vocab and tok not in specials}
    assert not missing, sorted(missing)[:30]


def test_captions_mention_every_object_and_sign_word() -> None:
    from molmo_eval.reference_model.world.language import caption
    from molmo_eval.reference_model.world.rng import Rng

    scene = make_scene(44)
    text = caption(scene, Rng(1))
    assert text.count("There is") + text.count("there is") + text.count("Next is") == len(scene.objects)
    for o in scene.objects:
        assert o.category in text and o.colour in text
        if o.text:
            assert o.text in text

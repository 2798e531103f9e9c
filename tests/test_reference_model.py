"""The reference model's parts: shapes, masks, packing, tokens, generation, checkpoints.

Everything runs on the ``tiny`` preset (milliseconds per forward pass)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from molmo_eval.reference_model import checkpoint  # noqa: E402
from molmo_eval.reference_model.config import ModelConfig, preset  # noqa: E402
from molmo_eval.reference_model.generate import generate, generate_uncached  # noqa: E402
from molmo_eval.reference_model.model import (  # noqa: E402
    IGNORE,
    MolmoModel,
    attention_mask,
    segment_cumsum,
    segment_positions,
)
from molmo_eval.reference_model.processing import collate, image_tensor, pack_row, prompt_ids  # noqa: E402
from molmo_eval.reference_model.tokenizer import (  # noqa: E402
    SPECIALS,
    Tokenizer,
    bin_centre,
    point_tokens,
    split_words,
)

WORDS = ("what", "color", "is", "the", "ball", "red", "blue", "yes", "no", "Point", "to", "cup", "There",
         "are", "none", "How", "many", "2", "3", "vqa2", "A", "B", "Options", ",", ".", "?", ":")


# a tagger of three labels (nothing + 2 categories, nothing + 2 colours, nothing + 1 word)
TAGS = (3, 3, 2)
TAG_WORDS = (None, "ball", "cup", None, "red", "blue", None, "yes")


def tiny_model(seed: int = 0, vocab: int = len(SPECIALS) + len(WORDS), peaked: bool = False,
               tagged: bool = False) -> MolmoModel:
    torch.manual_seed(seed)
    m = MolmoModel(preset("tiny", vocab_size=vocab, tags=TAGS if tagged else ()))
    if tagged:
        t = tok()
        m.set_tag_words([-1 if w is None else t.encode(w)[0] for w in TAG_WORDS])
    if peaked:  # larger weights: greedy choices are far from ties, so tokens compare exactly
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(8.0 if p.ndim >= 2 else 1.0)
    return m.eval()


def tok() -> Tokenizer:
    return Tokenizer(WORDS)


def rand_images(n: int, seed: int = 0, hw: tuple[int, int] = (48, 40)) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return image_tensor([rng.integers(0, 256, (*hw, 3), dtype=np.uint8) for _ in range(n)], 32)


# --- shapes and masks -----------------------------------------------------------------------------

def test_forward_shapes_and_loss():
    m = tiny_model()
    cfg = m.cfg
    assert cfg.prefix_len == (32 // 8 // 2) ** 2 + 2
    ids = torch.randint(len(SPECIALS), cfg.vocab_size, (3, 7))
    seg = torch.ones(3, 7, dtype=torch.long)
    logits, loss = m(rand_images(3), ids, seg, ids)
    assert logits.shape == (3, 7, cfg.vocab_size)
    assert loss is not None and math.isfinite(loss.item())
    assert abs(loss.item() - math.log(cfg.vocab_size)) < 1.0  # untrained: close to uniform


def test_mask_text_never_sees_later_tokens_and_prefix_is_visible_to_all():
    seg = torch.tensor([[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 1, 1]])
    P = 3
    mask = attention_mask(seg, P)[:, 0]  # (B, P+T, P+T)
    B, S, _ = mask.shape
    for b in range(B):
        for i in range(S):
            for j in range(S):
                if j < P:
                    assert mask[b, i, j], "the visual prefix is visible to every token"
                elif i < P:
                    assert not mask[b, i, j], "the prefix does not look at the text"
                else:
                    ti, tj = i - P, j - P
                    expected = tj <= ti and seg[b, ti] == seg[b, tj] and seg[b, tj] > 0
                    assert bool(mask[b, i, j]) == bool(expected), (b, i, j)


def test_later_tokens_and_other_segments_do_not_change_earlier_logits():
    m = tiny_model()
    px = rand_images(1)
    ids = torch.randint(len(SPECIALS), m.cfg.vocab_size, (1, 8))
    seg = torch.tensor([[1, 1, 1, 1, 2, 2, 2, 2]])
    base, _ = m(px, ids, seg)
    later = ids.clone()
    later[0, 3] = (later[0, 3] + 1 - len(SPECIALS)) % (m.cfg.vocab_size - len(SPECIALS)) + len(SPECIALS)
    changed, _ = m(px, later, seg)
    torch.testing.assert_close(changed[0, :3], base[0, :3])  # tokens before position 3 unaffected
    torch.testing.assert_close(changed[0, 4:], base[0, 4:])  # segment 2 does not see segment 1
    assert not torch.allclose(changed[0, 3], base[0, 3])
    other_image, _ = m(rand_images(1, seed=5), ids, seg)
    assert not torch.allclose(other_image[0, 0], base[0, 0]), "the image reaches the first text token"


@pytest.mark.parametrize("tagged", [False, True], ids=["plain", "tagged"])
def test_a_packed_segment_computes_what_it_computes_alone(tagged):
    m = tiny_model(tagged=tagged)
    px = rand_images(1)
    a = torch.randint(len(SPECIALS), m.cfg.vocab_size, (1, 5))
    b = torch.randint(len(SPECIALS), m.cfg.vocab_size, (1, 4))
    packed, _ = m(px, torch.cat([a, b], 1), torch.tensor([[1] * 5 + [2] * 4]))
    alone, _ = m(px, b, torch.ones(1, 4, dtype=torch.long))
    torch.testing.assert_close(packed[0, 5:], alone[0], atol=1e-5, rtol=1e-5)


def test_segment_cumsum_restarts_with_each_segment():
    x = torch.arange(1.0, 8.0).view(1, 7, 1)
    seg = torch.tensor([[1, 1, 2, 2, 2, 0, 0]])
    assert segment_cumsum(x, seg)[0, :, 0].tolist() == [1, 3, 3, 7, 12, 6, 13]


def test_grounding_bias_looks_at_the_tokens_tagged_with_the_word():
    """A patch tagged "cup" draws the attention of the word "cup", and of every later token of its
    segment (the context), to its window only; other words get no pull."""
    m = tiny_model(tagged=True)
    t = tok()
    with torch.no_grad():  # the tagger says "cup" on patch (0, 3) (window 1) and nothing elsewhere
        m.vision.head.proj.weight.zero_()
        m.vision.head.proj.bias.zero_()
        m.vision.head.proj.bias[[0, 3, 6]] = 20.0
    feats = torch.zeros(1, m.cfg.grid ** 2, m.cfg.vit_dim)
    feats[0, 3, 0] = 1.0
    with torch.no_grad():
        m.vision.head.proj.weight[2, 0] = 40.0  # feature 0 -> "cup"
        pre = m.prefix(feats=feats)
        ids = torch.tensor([t.encode("the cup is red")])
        words = m.embed(ids)
        bias = m.grounding(words, words.cumsum(1), pre, m.cfg.prefix_len + 4)
    word, ctx = bias[0, 0], bias[0, 1]  # (T, S) each
    assert word[1, 2] > 0.9 and word[1, 2] == word[1].max()  # "cup" -> window 1 = key 2 (after <vision_start>)
    assert word[0].abs().max() < 0.3 and word[3].abs().max() < 0.3  # "the", "red": no tag says them
    assert ctx[3, 2] > 0.9 and ctx[0].abs().max() < 0.3  # the context carries "cup" to later tokens only
    assert bias[0, :, :, m.cfg.prefix_len:].abs().max() == 0  # no bias towards text keys


def test_segment_positions_restart_after_the_prefix():
    seg = torch.tensor([[1, 1, 2, 2, 2, 0, 0]])
    pos = segment_positions(seg, 4)
    assert pos.tolist() == [[0, 1, 2, 3, 4, 5, 4, 5, 6, 4, 5]]


# --- tokens -------------------------------------------------------------------------------------

def test_point_tokens_round_trip_through_bin_centres():
    t = tok()
    for (x, y, w, h) in [(0.0, 0.0, 240, 208), (239.9, 207.9, 240, 208), (120.0, 13.3, 240, 208),
                         (57.5, 190.0, 192, 256)]:
        text = point_tokens(x, y, w, h)
        kx, ky = math.floor(100 * x / w), math.floor(100 * y / h)  # the bin that holds the point
        assert text == f"<point> <x_{kx}> <y_{ky}>"
        assert t.decode(t.encode(text)) == text
        cx, cy = bin_centre(kx, w), bin_centre(ky, h)
        assert abs(cx - x) <= w / 200 + 1e-9 and abs(cy - y) <= h / 200 + 1e-9  # within half a bin
        assert point_tokens(cx, cy, w, h) == text  # the centre lies in the same bin


def test_points_beyond_the_image_clip_to_the_edge_bins():
    assert point_tokens(-3, 500, 100, 100) == "<point> <x_0> <y_99>"


def test_tokenizer_words_punctuation_and_unknowns():
    t = tok()
    assert split_words("What's this? vqa2: Point to the cup.") == ["What's", "this", "?", "vqa2", ":", "Point",
                                                                   "to", "the", "cup", "."]
    ids = t.encode("Point to the zebra.")
    assert t.vocab[ids[3]] == "<unk>"
    assert t.unknown("Point to the zebra.") == ["zebra"]
    assert t.decode(t.encode("There are 3 red, blue ball.")) == "There are 3 red, blue ball."
    assert Tokenizer.from_json(t.to_json()).vocab == t.vocab


# --- loss placement -------------------------------------------------------------------------------

def test_answer_loss_covers_answer_tokens_and_eos_only():
    t = tok()
    ids, seg, tgt = pack_row(t, [("what color is the ball", "red"), ("How many cup", "2")], "answer", 64)
    scored = [(i, x) for i, x in enumerate(tgt) if x != IGNORE]
    # hand-derived: each segment is prompt + <answer> + answer + <eos>; loss predicts answer and <eos>
    n1 = 5 + 1 + 1 + 1
    assert [x for _, x in scored] == [t.encode("red")[0], t.eos_id, t.encode("2")[0], t.eos_id]
    assert [i for i, _ in scored] == [5, 6, n1 + 3, n1 + 4]
    assert seg == [1] * n1 + [2] * (3 + 1 + 1 + 1)
    _, _, all_text = pack_row(t, [("what color is the ball", "red")], "text", 64)
    assert sum(x != IGNORE for x in all_text) == len(all_text) - 1


def test_model_loss_ignores_prompt_predictions():
    """Changing what the prompt tokens' logits would predict cannot change an answer-only loss."""
    t = tok()
    m = tiny_model()
    batch = collate(t, [(np.zeros((40, 40, 3), np.uint8), [("what color is the ball", "red")])], 32, "answer", 64)
    _, loss = m(batch.pixels, batch.ids, batch.seg, batch.targets)
    logits, _ = m(batch.pixels, batch.ids, batch.seg)
    mask = batch.targets != IGNORE
    by_hand = torch.nn.functional.cross_entropy(logits[mask], batch.targets[mask])
    torch.testing.assert_close(loss, by_hand)
    assert int(mask.sum()) == 2


# --- generation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tagged", [False, True], ids=["plain", "tagged"])
def test_batched_generation_equals_unbatched_and_uncached(tagged):
    m = tiny_model(peaked=True, tagged=tagged)
    t = tok()
    prompts = [prompt_ids(t, p) for p in ("what color is the ball", "Point to the cup", "How many",
                                          "vqa2: what color is the red ball ? Options A B")]
    px = rand_images(len(prompts), seed=3)
    batched = generate(m, px, prompts, max_new_tokens=6)
    alone = [generate(m, px[i:i + 1], [p], max_new_tokens=6)[0] for i, p in enumerate(prompts)]
    uncached = generate_uncached(m, px, prompts, max_new_tokens=6)
    assert batched == alone == uncached
    assert len({tuple(x) for x in batched}) > 1, "outputs differ between prompts (not a constant model)"


def scripted_logits(m: MolmoModel, tokens: list[int]):
    """Replace the output layer: step k of decoding puts all mass on tokens[k] (the last one repeats)."""
    calls = {"n": 0}

    def logits(h: torch.Tensor) -> torch.Tensor:
        k = min(calls["n"], len(tokens) - 1)
        calls["n"] += 1
        out = torch.zeros(*h.shape[:-1], m.cfg.vocab_size)
        out[..., tokens[k]] = 1.0
        return out

    m.logits = logits  # type: ignore[method-assign]


def test_generation_stops_at_eos_and_respects_max_new_tokens():
    t = tok()
    red, blue = t.encode("red")[0], t.encode("blue")[0]
    m = tiny_model()
    scripted_logits(m, [red, blue, t.eos_id, red])
    assert generate(m, rand_images(1), [prompt_ids(t, "what color")], max_new_tokens=10) == [[red, blue]]
    m = tiny_model()
    scripted_logits(m, [red])
    assert generate(m, rand_images(2), [prompt_ids(t, "what"), prompt_ids(t, "is the")], max_new_tokens=4) \
        == [[red] * 4, [red] * 4]


def test_answers_stop_at_the_end_of_the_position_table_and_overlong_prompts_are_refused():
    t = tok()
    red = t.encode("red")[0]
    m = tiny_model()
    scripted_logits(m, [red])
    room = m.cfg.max_len - 5
    long_prompt = [red] * (room - 1) + [t.sep_id]  # leaves 5 text positions for the answer
    assert generate(m, rand_images(1), [long_prompt], max_new_tokens=40) == [[red] * 5]
    m = tiny_model()
    scripted_logits(m, [red])
    assert generate_uncached(m, rand_images(1), [long_prompt], max_new_tokens=40) == [[red] * 5]
    with pytest.raises(ValueError, match="no room to answer"):
        generate(m, rand_images(1), [[red] * m.cfg.max_len], max_new_tokens=4)


# --- checkpoints ----------------------------------------------------------------------------------

def test_checkpoint_round_trip_float16_and_float32(tmp_path):
    m = tiny_model(seed=1)
    t = tok()
    checkpoint.save(m, t, tmp_path / "f32", {"note": "x"}, dtype=torch.float32)
    checkpoint.save(m, t, tmp_path / "f16", dtype=torch.float16)
    m32, t32, meta = checkpoint.load(tmp_path / "f32")
    m16, _, _ = checkpoint.load(tmp_path / "f16")
    assert meta == {"note": "x"} and t32.vocab == t.vocab and m32.cfg == m.cfg
    for (k, v), v32, v16 in zip(m.state_dict().items(), m32.state_dict().values(), m16.state_dict().values()):
        if not v.is_floating_point():  # integer buffers (the tagger's word ids) stay exact integers
            assert v32.dtype == v16.dtype == v.dtype and torch.equal(v32, v) and torch.equal(v16, v), k
            continue
        assert v32.dtype == torch.float32 and v16.dtype == torch.float32, k
        torch.testing.assert_close(v32, v, rtol=0, atol=0)
        torch.testing.assert_close(v16, v.half().float(), rtol=0, atol=0)
    assert (tmp_path / "f16" / "model.safetensors").stat().st_size < (tmp_path / "f32" / "model.safetensors").stat().st_size * 0.6
    assert checkpoint.digest(tmp_path / "f32") != checkpoint.digest(tmp_path / "f16")
    assert checkpoint.digest(tmp_path / "f32") == checkpoint.digest(tmp_path / "f32")


def test_checkpoint_load_refuses_what_is_not_one(tmp_path):
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x04not a safetensors file")
    (tmp_path / "config.json").write_text('{"format": "molmo-reference/1", "model": {}, "tokenizer": {"vocab": []}}')
    with pytest.raises(Exception) as e:
        checkpoint.load(tmp_path)
    assert "pickle" not in str(e.value).lower()


def test_config_json_round_trip_and_unknown_fields():
    cfg = preset("small", pointing_head=True)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="bogus"):
        ModelConfig.from_json({**cfg.to_json(), "bogus": 1})


def test_pointing_head_writes_the_bins_after_point():
    t = tok()
    torch.manual_seed(0)
    m = MolmoModel(preset("tiny", vocab_size=len(t), pointing_head=True)).eval()
    scripted_logits(m, [t.point_id])  # the LM always wants <point>; the head must write x, then y
    out = generate(m, rand_images(1), [prompt_ids(t, "Point to the cup")], max_new_tokens=4)[0]
    assert out[0] == t.point_id and t.is_x(out[1]) and t.is_y(out[2]) and out[3] == t.point_id
    with torch.no_grad():
        h = torch.zeros(1, m.cfg.dim)
        xy = m.pointing(h)
    assert xy.shape == (1, 2) and bool(((xy >= 0) & (xy <= 1)).all())


def test_point_bins_share_the_geometry_of_the_visual_tokens():
    """Each x bin's code is most similar to the column of visual windows that holds the bin centre
    (and y to the row), so writing a point can copy the position of an attended visual token."""
    from molmo_eval.reference_model.connector import bin_codes, sincos_2d

    g, dim = 8, 192
    pos = sincos_2d(g, dim).view(g, g, dim)
    x, y = bin_codes(g, dim, 100)
    for k in range(100):
        u = (k + 0.5) / 100 * g - 0.5  # the bin centre in window units (window c has its centre at c)
        col_sim = torch.stack([x[k] @ pos[0, c] for c in range(g)])
        row_sim = torch.stack([y[k] @ pos[r, 0] for r in range(g)])
        # the most similar window is the one whose centre is nearest (either one on an exact tie)
        assert abs(int(col_sim.argmax()) - u) <= 0.5 + 1e-9 and abs(int(row_sim.argmax()) - u) <= 0.5 + 1e-9, k
    m = tiny_model()
    t = tok()
    torch.testing.assert_close(m.embed.weight[t.x0_id + 37] / m.embed.weight[t.x0_id + 37].norm(),
                               bin_codes(m.cfg.grid // m.cfg.pool, m.cfg.dim, 100)[0][37]
                               / bin_codes(m.cfg.grid // m.cfg.pool, m.cfg.dim, 100)[0][37].norm())


def test_visual_tokens_carry_their_position():
    m = tiny_model()
    px = torch.zeros(1, 3, 32, 32)  # a blank image: tokens differ only by their position code
    vis = m.connector(m.vision(px))[0][0]
    assert vis.shape[0] == m.cfg.n_visual
    assert torch.cdist(vis, vis).fill_diagonal_(1.0).min() > 0.1

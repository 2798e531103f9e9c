"""The pointer (reference_model/pointer.py): point bins written from where the model looks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_reference_model import TAG_WORDS, TAGS, rand_images, tok  # noqa: E402

from molmo_eval.reference_model.config import preset  # noqa: E402
from molmo_eval.reference_model.generate import generate, generate_uncached  # noqa: E402
from molmo_eval.reference_model.model import MolmoModel, previous_points  # noqa: E402
from molmo_eval.reference_model.processing import prompt_ids  # noqa: E402
from molmo_eval.reference_model.tokenizer import N_BINS, SPECIALS  # noqa: E402


def pointer_model(seed: int = 0) -> MolmoModel:
    t = tok()
    torch.manual_seed(seed)
    m = MolmoModel(preset("tiny", vocab_size=len(t), tags=TAGS, pointer=True))
    m.set_tag_words([-1 if w is None else t.encode(w)[0] for w in TAG_WORDS])
    return m.eval()


def test_adding_the_pointer_changes_no_other_initial_weight_nor_the_global_random_state():
    t = tok()
    torch.manual_seed(0)
    plain = MolmoModel(preset("tiny", vocab_size=len(t), tags=TAGS))
    after_plain = torch.rand(3)
    torch.manual_seed(0)
    with_pointer = MolmoModel(preset("tiny", vocab_size=len(t), tags=TAGS, pointer=True))
    after_pointer = torch.rand(3)
    theirs = with_pointer.state_dict()
    for k, v in plain.state_dict().items():
        assert torch.equal(v, theirs[k]), k
    assert sorted(set(theirs) - set(plain.state_dict())) == ["pointer.gain", "pointer.inhibit", "pointer.wk",
                                                             "pointer.wq"]
    assert torch.equal(after_plain, after_pointer)


def test_previous_points_are_the_answers_own_latest_point():
    t = tok()
    P, X, Y, A = t.point_id, t.x0_id, t.x0_id + N_BINS, SPECIALS.index("<answer>")
    #                   0  1      2      3  4  5       6       7  8       9       10
    ids = torch.tensor([[P, X + 9, Y + 8, A, P, X + 30, Y + 40, P, X + 50, Y + 60, P]])
    prev = [tuple(p) for p in previous_points(ids)[0].tolist()]
    none = (-1, -1)
    assert prev == [none, none, (9, 8), none, none, none, (30, 40), (30, 40), none, (50, 60), (50, 60)]


def test_the_pointer_keeps_the_bin_mass_and_splits_it_by_where_it_looks():
    m = pointer_model()
    G, N = m.pointer.g, m.cfg.n_visual
    f = torch.randn(4, N_BINS)
    # all attention on the last visual token: row G-1, column G-1 (grid G x G, row-major)
    logp = torch.full((4, N), -30.0)
    logp[:, N - 1] = 0.0
    logp = logp.log_softmax(-1)
    is_y = torch.tensor([False, False, True, True])
    x_bin = torch.tensor([0, 0, 5, 5])  # for y: the x just written, here in column 0
    out = m.pointer.bins(f, logp, is_y, x_bin)
    torch.testing.assert_close(out.logsumexp(-1), f.logsumexp(-1))  # "some bin" keeps its probability
    cell = m.pointer.cell
    assert bool((cell[out[:2].argmax(-1)] == G - 1).all()), "x lands in the attended token's column"
    # y is read within the x's column: the attended token is not in column 0, where every row is
    # equally (un)likely, so each row's bins get the same mass, shared as the output layer prefers
    per_row = torch.zeros(2, G).index_add_(1, cell, out[2:].softmax(-1))
    torch.testing.assert_close(per_row, torch.full((2, G), 1.0 / G))
    k = cell == 0
    torch.testing.assert_close(out[2:, k].softmax(-1), f[2:, k].softmax(-1))
    out_y = m.pointer.bins(f, logp, is_y, torch.tensor([0, 0, N_BINS - 1, N_BINS - 1]))  # x in column G-1
    assert bool((cell[out_y[2:].argmax(-1)] == G - 1).all()), "y lands in the attended token's row"


def test_a_further_point_never_goes_left_of_the_previous_one_nor_back_to_it():
    m = pointer_model()
    G, N, D = m.pointer.g, m.cfg.n_visual, m.cfg.dim
    h, vis, match = torch.zeros(2, D), torch.randn(2, N, D), torch.zeros(2, N)
    prev = torch.tensor([[-1, -1], [55, 30]])  # second row: a previous point at bins (55, 30)
    with torch.no_grad():
        logp = m.pointer.log_probs(h, vis, match, prev)
    col, row = int(m.pointer.cell[55]), int(m.pointer.cell[30])
    cols = torch.arange(N) % G
    assert torch.isfinite(logp[0]).all()
    assert bool((logp[1][cols < col] < -1e3).all()) and bool((logp[1][cols >= col] > -1e3).all())
    with torch.no_grad():
        free = m.pointer.log_probs(h, vis, match, torch.tensor([[-1, -1], [-1, -1]]))
    n, other = row * G + col, (row + 1) % G * G + col  # the previous point's token, another in its column
    assert logp[1, n] - free[1, n] < logp[1, other] - free[1, other], "the previous point's token is inhibited"


def scripted_bins(m: MolmoModel, steps: list[str]) -> None:
    """The output layer at decoding step k: all mass on <point> ("p"), spread evenly over the x bins
    ("x") or the y bins ("y"), or on <eos> ("e"), so the pointer alone picks the bins."""
    t, calls = tok(), {"n": 0}
    first = {"x": t.x0_id, "y": t.x0_id + N_BINS}

    def logits(h: torch.Tensor) -> torch.Tensor:
        k = min(calls["n"], len(steps) - 1)
        calls["n"] += 1
        out = torch.zeros(*h.shape[:-1], m.cfg.vocab_size)
        step = steps[k]
        if step in first:
            out[..., first[step]:first[step] + N_BINS] = 10.0
        else:
            out[..., t.point_id if step == "p" else SPECIALS.index("<eos>")] = 10.0
        return out

    m.logits = logits  # type: ignore[method-assign]


def test_generation_with_the_pointer_is_the_same_batched_alone_and_uncached():
    t = tok()
    steps = ["p", "x", "y", "p", "x", "y", "e"]
    prompts = [prompt_ids(t, p) for p in ("Point to the cup", "Point to the ball", "How many", "what color is the ball")]
    px = rand_images(len(prompts), seed=5)
    runs = []
    for how in ("batched", "alone", "uncached"):
        m = pointer_model()
        with torch.no_grad():
            m.pointer.wq.mul_(100.0)  # a pointer that prefers some tokens strongly
        if how == "alone":
            out = []
            for i, p in enumerate(prompts):
                scripted_bins(m, steps)
                out.append(generate(m, px[i:i + 1], [p], max_new_tokens=9)[0])
        else:
            scripted_bins(m, steps)
            out = (generate if how == "batched" else generate_uncached)(m, px, prompts, max_new_tokens=9)
        runs.append(out)
    assert runs[0] == runs[1] == runs[2]
    cell = pointer_model().pointer.cell
    for row in runs[0]:
        assert row[0] == t.point_id and t.is_x(row[1]) and t.is_y(row[2]) and row[3] == t.point_id
        x1, x2 = row[1] - t.x0_id, row[4] - t.x0_id
        assert cell[x2] >= cell[x1], "a second point is never left of the first one's column"
    assert len({tuple(r) for r in runs[0]}) > 1, "the bins depend on the image and the question"


def test_training_loss_reaches_the_pointer():
    t = tok()
    m = pointer_model().train()
    P, X, Y = t.point_id, t.x0_id, t.x0_id + N_BINS
    ids = torch.tensor([[t.encode("Point")[0], 3, P, X + 30, Y + 40, P, X + 77, Y + 5, 2]])
    targets = torch.roll(ids, -1, 1)
    targets[0, :2] = -100
    targets[0, -1] = -100
    _, loss = m(rand_images(1), ids, torch.ones_like(ids), targets)
    loss.backward()
    assert m.pointer.wq.grad.abs().sum() > 0 and m.pointer.inhibit.grad is not None


def test_stages_before_pointing_train_the_same_weights_with_and_without_the_pointer(tmp_path):
    """Stages 0-2 (tiny preset, tagger, pooled scenes) end in the same weights and optimizer moments
    with the pointer as without it, and the pointer itself stays as initialised: a run that adds the
    pointer before stage 3 (bench/pilots/add_pointer_state.py) continues as one that had it all along."""
    from safetensors.torch import load_file

    from molmo_eval.reference_model import train as rt

    states = {}
    for on in (False, True):
        cfg = rt.TrainConfig(preset("tiny", pointer=on), rt.stage_plan("tiny", stages=(1, 2)), seed=0, threads=1,
                             tagger=True, pool=8)
        rt.train(cfg, tmp_path / str(on))
        states[on] = load_file(str(tmp_path / str(on) / "state" / "train_state.safetensors"))
    plain, with_pointer = states[False], states[True]
    assert sorted(set(with_pointer) - set(plain)) == [f"model.pointer.{k}" for k in ("gain", "inhibit", "wk", "wq")]
    for k, v in plain.items():
        assert torch.equal(v, with_pointer[k]), k
    fresh = MolmoModel(preset("tiny", vocab_size=with_pointer["model.embed.weight"].shape[0], pointer=True))
    for k, v in fresh.pointer.state_dict().items():
        assert torch.equal(v, with_pointer[f"model.pointer.{k}"]), k

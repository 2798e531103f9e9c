"""The `reference` model plugin and the bundled checkpoint, through the harness."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from molmo_eval.core.errors import ConfigError  # noqa: E402
from molmo_eval.core.types import AnswerKind, CoordSpace, GenerationSettings, Image, Request  # noqa: E402
from molmo_eval.models.reference import ReferenceModel, bundled_checkpoint  # noqa: E402
from molmo_eval.reference_model import checkpoint  # noqa: E402
from molmo_eval.reference_model.config import preset  # noqa: E402
from molmo_eval.reference_model.model import MolmoModel  # noqa: E402
from molmo_eval.reference_model.tokenizer import Tokenizer  # noqa: E402


@pytest.fixture
def tiny_ckpt(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    tok = Tokenizer(("what", "color", "is", "it", "?", "red", "yes", "no"))
    model = MolmoModel(preset("tiny", vocab_size=len(tok)))
    return checkpoint.save(model, tok, tmp_path / "ckpt")


def _request(prompt: str, pixels: np.ndarray | None, n: int = 8, stop: tuple[str, ...] = ()) -> Request:
    digest = "" if pixels is None else hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest()
    images = () if pixels is None else (Image(digest, (pixels.shape[1], pixels.shape[0]), b"", pixels),)
    return Request(uid=f"t/s/{prompt}", prompt=prompt, images=images,
                   settings=GenerationSettings(max_new_tokens=n, stop=stop), answer_kind=AnswerKind.TEXT)


def test_plugin_declares_what_the_harness_needs(tiny_ckpt):
    m = ReferenceModel(checkpoint=str(tiny_ckpt), threads="1")
    assert m.coord_space is CoordSpace.BINS and m.prompt_style == "molmo" and m.needs_pixels
    assert m.fingerprint == "reference-" + checkpoint.digest(tiny_ckpt)[:20]
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    reqs = [_request("what color is it ?", img), _request("is it red ?", img, n=2), _request("what ?", None)]
    gens = m.generate(reqs)
    assert len(gens) == 3 and all(isinstance(g.text, str) and g.error is None for g in gens)
    assert len(m.tok.encode(gens[1].text)) <= 2
    assert m.generate(reqs) == gens or [g.text for g in m.generate(reqs)] == [g.text for g in gens]
    singles = [m.generate([r])[0].text for r in reqs]
    assert singles == [g.text for g in gens], "batched outputs equal one-by-one outputs"


def test_the_encoder_runs_once_per_image_and_outputs_do_not_change(tiny_ckpt):
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(2))
    reqs = [_request("what color is it ?", a), _request("is it red ?", b), _request("what ?", a),
            _request("is it ?", b), _request("what ?", None), _request("it ?", None)]
    m = ReferenceModel(checkpoint=str(tiny_ckpt), threads="1")
    seen = []
    encode = m.model.prefix
    m.model.prefix = lambda px: (seen.append(px.shape[0]), encode(px))[1]  # type: ignore[method-assign]
    first = [g.text for g in m.generate(reqs[:3])]
    rest = [g.text for g in m.generate(reqs[3:])]
    assert seen == [2, 1], "a, b in the first batch; only the gray stand-in is new in the second"
    fresh = [ReferenceModel(checkpoint=str(tiny_ckpt), threads="1").generate([r])[0].text for r in reqs]
    assert first + rest == fresh


def test_fingerprint_follows_the_weights(tiny_ckpt, tmp_path):
    a = ReferenceModel(checkpoint=str(tiny_ckpt), threads="1")
    model, tok, _ = checkpoint.load(tiny_ckpt)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    other = checkpoint.save(model, tok, tmp_path / "other")
    assert ReferenceModel(checkpoint=str(other), threads="1").fingerprint != a.fingerprint


def test_fingerprint_ignores_the_training_metadata(tiny_ckpt, tmp_path):
    model, tok, _ = checkpoint.load(tiny_ckpt)
    again = checkpoint.save(model, tok, tmp_path / "again", meta={"train_seconds": 123.4, "command": "x"})
    assert checkpoint.digest(again) == checkpoint.digest(tiny_ckpt)


def test_bad_model_args_are_config_errors(tiny_ckpt, tmp_path):
    with pytest.raises(ConfigError, match="unknown argument"):
        ReferenceModel(checkpoint=str(tiny_ckpt), temprature="0")
    with pytest.raises(ConfigError, match="not a reference-model checkpoint"):
        ReferenceModel(checkpoint=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="max_batch"):
        ReferenceModel(checkpoint=str(tiny_ckpt), max_batch="0")


def test_stop_strings_cut_the_text():
    from molmo_eval.models.reference import _cut

    assert _cut("red ball. blue", (".",)) == "red ball"
    assert _cut("red ball", ("\n", "x")) == "red ball"


def test_importing_the_plugin_does_not_import_torch():
    code = "import sys, molmo_eval.models.reference as r; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_reference_model_package_never_imports_the_harness():
    root = Path(__file__).resolve().parents[1] / "reference_model"
    offenders = [p.name for p in root.rglob("*.py") if "molmo_eval" in p.read_text().replace(
        "molmo_eval.reference_model", "")]
    assert offenders == []


# --- the bundled checkpoint ---------------------------------------------------------------------

def test_bundled_checkpoint_is_small_and_loads():
    path = bundled_checkpoint()
    assert checkpoint.is_checkpoint(path), f"the bundled checkpoint is missing at {path}"
    assert (path / "model.safetensors").stat().st_size < 40 * 2**20
    assert (path / "MODEL_CARD.md").is_file()
    model, tok, meta = checkpoint.load(path)
    assert meta.get("stage") == 3 and len(tok) == model.cfg.vocab_size


def test_bundled_checkpoint_beats_the_blind_baseline(tmp_path):
    """VQAv2 and GQA on fresh evaluation scenes, scored by the harness, against the best constant
    answer (a blind model that ignores image and question). The constant is picked per task on the
    same samples, which favours the blind side; the checkpoint must still beat it clearly."""
    from collections import Counter

    from molmo_eval import evaluate
    from molmo_eval.models.scripted import ScriptedModel
    from molmo_eval.reference_model.world.world import WorldSize, write_world

    size = WorldSize(vqav2=60, textvqa=0, gqa=60, refer=0, pope=0, mmbench=0, pointqa=0)
    write_world(tmp_path / "data", size, seed=4242, benchmarks=["vqav2", "gqa"])
    common = dict(data_root=tmp_path / "data", use_cache=False, bootstrap=0)
    rec = evaluate(["vqav2", "gqa"], ReferenceModel(), output_path=tmp_path / "run", **common)
    from molmo_eval.run import records

    answers = Counter()
    for line in records.iter_samples(tmp_path / "run"):
        t = line["target"]
        answers[(line["task"], t.get("answer") or (t.get("answers") or [""])[0])] += 1
    for task in ("vqav2", "gqa"):
        best = max((n, a) for (tk, a), n in answers.items() if tk == task)[1]
        blind = evaluate([task], ScriptedModel(fn=lambda r, a=best: a, fingerprint=f"const-{best}"),
                         output_path=tmp_path / f"blind-{task}", **common).tasks[task].metrics["accuracy"]
        got = rec.tasks[task].metrics["accuracy"]
        assert got.value >= blind.value + 0.1, (task, got, blind)


def test_bundled_checkpoint_points_better_than_the_image_centre(tmp_path):
    """RefCOCO on fresh evaluation scenes: the checkpoint's points land in the referred box clearly
    more often than a blind pointer that always answers the image centre (scored on the same rows)."""
    from molmo_eval import evaluate
    from molmo_eval.reference_model.world.world import WorldSize, write_world
    from molmo_eval.run import records

    size = WorldSize(vqav2=0, textvqa=0, gqa=0, refer=20, pope=0, mmbench=0, pointqa=0)
    write_world(tmp_path / "data", size, seed=4242, benchmarks=["refer"])
    rec = evaluate(["refcoco"], ReferenceModel(), output_path=tmp_path / "run", data_root=tmp_path / "data",
                   use_cache=False, bootstrap=0)
    centre_hits = []
    for line in records.iter_samples(tmp_path / "run"):
        (w, h), (x1, y1, x2, y2) = line["image_size"], line["target"]["box"]
        centre_hits.append(x1 <= w / 2 <= x2 and y1 <= h / 2 <= y2)
    blind = sum(centre_hits) / len(centre_hits)
    got = rec.tasks["refcoco"].metrics["point_in_box"].value
    assert len(centre_hits) >= 100 and got >= blind + 0.08, (got, blind)

"""`hf-molmo`: argument checks (no torch needed), the checkpoint fingerprint, and a tiny random-weight
Molmo2 built from a config, saved to a temporary folder and evaluated end to end through the harness
(its answers are noise, but they flow prompt -> processor -> generate -> parse -> score).

The tests that import transformers are marked slow (~5 s of imports): `pytest -m slow tests/test_hf_molmo.py`.
Molmo2's image processor is torchvision code, and torchvision does not import beside this project's
CPU torch; `image_backend=auto` then uses `TorchMolmo2ImageProcessor`. One slow test compares it with
the torchvision processor wherever torchvision imports (run in an environment with torch 2.14.1 +
torchvision 0.29.1: bit-identical; see docs/backends.md).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from molmo_eval import evaluate
from molmo_eval.core.errors import ConfigError
from molmo_eval.core.types import CoordSpace
from molmo_eval.models.hf_molmo import _cut, fingerprint, parse_options
from molmo_eval.run import records


def has_native_molmo2() -> bool:
    """torch and transformers >= 5.20 installed (checked without importing them)."""
    from importlib import metadata, util

    try:
        major, minor = (int(x) for x in metadata.version("transformers").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return util.find_spec("torch") is not None and (major, minor) >= (5, 20)


needs_molmo2 = pytest.mark.skipif(not has_native_molmo2(), reason="needs torch and transformers>=5.20")
# importing transformers' Molmo2 and building the tiny checkpoint take ~5 s: these run with -m slow

CHAT_TEMPLATE = (  # a minimal single-turn template in Molmo2's ChatML layout
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|image|>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = [
    "<|im_start|>",
    "<|im_end|>",
    "<|image|>",
    "<|video|>",
    "<im_patch>",
    "<im_col>",
    "<im_start>",
    "<low_res_im_start>",
    "<frame_start>",
    "<im_end>",
    "<frame_end>",
    "<im_low>",
]


def make_tiny_molmo2(d: Path, seed: int = 0) -> Path:
    """A random-weight Molmo2 (2-layer ViT and LM, width 32, 56-pixel crops) with a byte-level
    tokenizer, saved like a real checkpoint: weights, config, tokenizer, image/video processor
    configs, processor config and chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Molmo2Config, Molmo2ForConditionalGeneration, PreTrainedTokenizerFast
    from transformers.models.molmo2.configuration_molmo2 import (
        Molmo2AdapterConfig,
        Molmo2TextConfig,
        Molmo2VisionConfig,
    )
    from transformers.models.molmo2.image_processing_molmo2 import Molmo2ImageProcessor
    from transformers.models.molmo2.video_processing_molmo2 import Molmo2VideoProcessor

    core = Tokenizer(
        models.BPE(vocab={c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}, merges=[])
    )
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        additional_special_tokens=SPECIALS,
    )
    ids = dict(zip(SPECIALS, tok.convert_tokens_to_ids(SPECIALS), strict=True))
    text = Molmo2TextConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        vocab_size=len(tok),
        additional_vocab_size=8,
        max_position_embeddings=1024,
        rope_theta=10000.0,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    vision = Molmo2VisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=8,
        image_size=[56, 56],
        patch_size=14,
    )
    adapter = Molmo2AdapterConfig(
        vision_feature_layer=[-1],
        hidden_size=32,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=8,
        intermediate_size=37,
        text_hidden_size=32,
    )
    config = Molmo2Config(
        text_config=text,
        vision_config=vision,
        adapter_config=adapter,
        image_start_token_id=ids["<im_start>"],
        low_res_image_start_token_id=ids["<low_res_im_start>"],
        image_end_token_id=ids["<im_end>"],
        image_patch_id=ids["<im_patch>"],
        frame_start_token_id=ids["<frame_start>"],
        frame_end_token_id=ids["<frame_end>"],
    )
    torch.manual_seed(seed)
    Molmo2ForConditionalGeneration(config).save_pretrained(d)
    tok.save_pretrained(d)
    Molmo2ImageProcessor(
        size={"height": 56, "width": 56}, max_crops=4, overlap_margins=[1, 1]
    ).save_pretrained(d)
    Molmo2VideoProcessor(size={"height": 56, "width": 56}).save_pretrained(d)
    (d / "processor_config.json").write_text(
        json.dumps(
            {
                "processor_class": "Molmo2Processor",
                "image_use_col_tokens": True,
                "use_single_crop_col_tokens": False,
                "use_single_crop_start_token": True,
            }
        )
    )
    (d / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    return d


@pytest.fixture(scope="module")
def tiny_molmo2(tmp_path_factory) -> Path:
    return make_tiny_molmo2(tmp_path_factory.mktemp("molmo2-tiny"))


# --- end to end through the harness -----------------------------------------------------------


@pytest.mark.slow
@needs_molmo2
def test_tiny_molmo2_runs_end_to_end_through_the_harness(tiny_molmo2, toy_task, toy_root, tmp_path):
    from molmo_eval.models.hf_molmo import HFMolmo

    model = HFMolmo(pretrained=str(tiny_molmo2), device="cpu")
    assert model.coord_space is CoordSpace.PERCENT and model.prompt_style == "molmo" and model.needs_pixels
    assert model.fingerprint.startswith("hf-molmo-")
    rec = evaluate(
        "toy",
        model,
        data_root=toy_root,
        limit=6,
        batch_size=3,
        bootstrap=0,
        output_path=tmp_path / "run",
        cache_dir=tmp_path / "cache",
    )
    tr = rec.tasks["toy"]
    assert tr.n == 6 and tr.n_failed == 0 and rec.counts["model_calls"] == 6
    lines = list(records.iter_samples(tmp_path / "run"))
    assert [ln["uid"] for ln in lines] == [f"toy/a/{i}" for i in range(6)]
    for ln in lines:
        assert ln["error"] is None and isinstance(ln["output"]["text"], str)  # generated (noise)
        assert ln["prompt"].startswith("toy: ")  # the Molmo prompt style reached the task
        assert ln["answer"]["kind"] == "text" and ln["scores"]["accuracy"] in (0.0, 1.0)  # parsed, scored
    assert 0.0 <= tr.metrics["accuracy"].value <= 1.0


@pytest.mark.slow
@needs_molmo2
def test_batched_generation_equals_one_at_a_time(tiny_molmo2, toy_task, toy_root):
    from molmo_eval.core.types import AnswerKind, GenerationSettings, ImageRef, Request
    from molmo_eval.data.images import load_image
    from molmo_eval.models.hf_molmo import HFMolmo

    model = HFMolmo(pretrained=str(tiny_molmo2), device="cpu")
    images = [
        load_image(ImageRef(path=str(p)), True) for p in sorted((toy_root / "toy" / "images").glob("a_*.png"))
    ]
    prompts = [
        "What colour?",
        "Point to the red square in this image, please.",
        "x",
    ]  # different lengths: padding
    reqs = [
        Request(
            uid=f"t/a/{i}",
            prompt=p,
            images=(images[i],),
            settings=GenerationSettings(max_new_tokens=12),
            answer_kind=AnswerKind.TEXT,
        )
        for i, p in enumerate(prompts)
    ]
    batched = model.generate(reqs)
    single = [model.generate([r])[0] for r in reqs]
    assert [g.text for g in batched] == [g.text for g in single]
    assert any(g.text for g in batched)  # random weights still emit tokens


@pytest.mark.slow
@needs_molmo2
def test_served_molmo2_through_the_openai_model_matches_in_process(tiny_molmo2, toy_task, toy_root, tmp_path):
    pytest.importorskip("httpx")
    from molmo_eval.interop.serve import Server
    from molmo_eval.models.hf_molmo import HFMolmo
    from molmo_eval.models.openai_api import OpenAIModel

    model = HFMolmo(pretrained=str(tiny_molmo2), device="cpu")
    common = dict(data_root=toy_root, limit=8, bootstrap=0)
    local = evaluate("toy", model, output_path=tmp_path / "l", cache_dir=tmp_path / "c1", **common)
    with (
        Server(model, port=0) as server,
        OpenAIModel(base_url=server.url, model="hf-molmo", max_concurrency="4") as remote,
    ):
        via = evaluate("toy", remote, output_path=tmp_path / "v", cache_dir=tmp_path / "c2", **common)
    outputs = [[ln["output"]["text"] for ln in records.iter_samples(tmp_path / d)] for d in ("l", "v")]
    assert outputs[0] == outputs[1] and len(outputs[0]) == 8
    assert via.tasks["toy"].metrics == local.tasks["toy"].metrics


@pytest.mark.slow
@needs_molmo2
def test_image_backend_auto_picks_what_imports(tiny_molmo2):
    from molmo_eval.models.hf_molmo import HFMolmo, torchvision_usable

    model = HFMolmo(pretrained=str(tiny_molmo2), device="cpu")
    assert model.image_backend == ("torchvision" if torchvision_usable() else "torch")


@pytest.mark.slow
@needs_molmo2
def test_torch_image_processor_equals_the_torchvision_processor(tiny_molmo2):
    """Run where torchvision imports (e.g. torch 2.14.1 + torchvision 0.29.1); skipped elsewhere."""
    from transformers import AutoProcessor

    from molmo_eval.core.types import AnswerKind, GenerationSettings, Request
    from molmo_eval.models.hf_molmo import _message, torch_processor, torchvision_usable

    if not torchvision_usable():
        pytest.skip("torchvision does not import here")
    from PIL import Image

    real = AutoProcessor.from_pretrained(tiny_molmo2, local_files_only=True)
    ours = torch_processor(tiny_molmo2)
    assert type(real.image_processor).__name__ == "Molmo2ImageProcessor"
    rng = np.random.default_rng(0)
    for size in [(8, 8), (9, 8), (56, 56), (57, 131), (300, 41), (640, 480), (1000, 3)]:
        ims = [
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 256, (size[0], size[1] + 5, 3), dtype=np.uint8)).convert("L"),
        ]
        reqs = [
            Request(
                uid="u",
                prompt=f"Point to {size}",
                images=(),
                settings=GenerationSettings(),
                answer_kind=AnswerKind.POINTS,
            )
        ]
        text = [
            real.apply_chat_template(
                [
                    {
                        **_message(reqs[0]),
                        "content": [{"type": "image"}] * 2 + [{"type": "text", "text": reqs[0].prompt}],
                    }
                ],
                add_generation_prompt=True,
                tokenize=False,
            )
        ]
        a = real(text=text, images=ims, return_tensors="pt")
        b = ours(text=text, images=ims, return_tensors="pt")
        assert set(a) == set(b)
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert bool((a[k] == b[k]).all()), (k, size)


# --- arguments, checked before torch is imported ----------------------------------------------


def write_config(d: Path, model_type: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"model_type": model_type}))
    return d


@pytest.mark.parametrize(
    "args, fragment",
    [
        ({}, "pretrained=DIR: required"),
        ({"pretrained": "allenai/Molmo2-4B"}, "not a local folder (weights are read only from disk"),
        (
            {"pretrained": "{tmp}/qwen", "_type": "qwen2_vl"},
            "model_type 'qwen2_vl' is not a Molmo checkpoint",
        ),
        ({"pretrained": "{tmp}/molmo", "_type": "molmo"}, "pass trust_remote_code=true"),
        ({"pretrained": "{tmp}/m2", "_type": "molmo2", "dtype": "fp8"}, "dtype='fp8'"),
        ({"pretrained": "{tmp}/m2", "_type": "molmo2", "image_backend": "cv2"}, "image_backend='cv2'"),
        (
            {"pretrained": "{tmp}/m2", "_type": "molmo2", "revision": "main"},
            "unknown argument(s) for model 'hf-molmo'",
        ),
    ],
)
def test_options_errors(tmp_path, args, fragment):
    args = dict(args)
    kind = args.pop("_type", None)
    if "pretrained" in args:
        args["pretrained"] = args["pretrained"].format(tmp=tmp_path)
        if kind:
            write_config(Path(args["pretrained"]), kind)
    with pytest.raises(ConfigError) as e:
        parse_options(args)
    assert fragment in str(e.value)


def test_options_accept_both_families(tmp_path):
    m2 = parse_options({"pretrained": str(write_config(tmp_path / "a", "molmo2")), "dtype": "bfloat16"})
    assert (m2.family, m2.dtype, m2.trust_remote_code, m2.image_backend) == (
        "molmo2",
        "bfloat16",
        False,
        "auto",
    )
    m1 = parse_options(
        {
            "pretrained": str(write_config(tmp_path / "b", "molmo")),
            "trust_remote_code": "true",
            "device": "cuda:1",
        }
    )
    assert (m1.family, m1.trust_remote_code, m1.device) == ("molmo", True, "cuda:1")


def test_fingerprint_follows_content_not_location(tmp_path):
    d = write_config(tmp_path / "ckpt", "molmo2")
    weights = bytearray(np.random.default_rng(0).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes())
    header = json.dumps(
        {"w": {"dtype": "U8", "shape": [len(weights)], "data_offsets": [0, len(weights)]}}
    ).encode()
    (d / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(weights))
    base = fingerprint(d, ["molmo2", "float32"])
    shutil.copytree(d, tmp_path / "moved")
    assert fingerprint(tmp_path / "moved", ["molmo2", "float32"]) == base
    assert fingerprint(d, ["molmo2", "bfloat16"]) != base
    weights[2 << 20] ^= 1  # one bit of a fine-tune, inside a sampled slice
    (d / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(weights))
    assert fingerprint(d, ["molmo2", "float32"]) != base
    changed = fingerprint(d, ["molmo2", "float32"])
    (d / ".cache" / "huggingface").mkdir(parents=True)  # download metadata of `--local-dir` is ignored
    (d / ".cache" / "huggingface" / "model.safetensors.metadata").write_text(str(time.time()))
    assert fingerprint(d, ["molmo2", "float32"]) == changed
    (d / "chat_template.jinja").write_text("x")
    assert fingerprint(d, ["molmo2", "float32"]) not in (base, changed)


@pytest.mark.parametrize(
    "text, stop, expected",
    [
        ("yes. It is", (".",), "yes"),
        ("a\nb", ("\n", "b"), "a"),
        ("abc", (), "abc"),
        ("abc", ("z",), "abc"),
    ],
)
def test_cut_at_stop_strings(text, stop, expected):
    assert _cut(text, stop) == expected

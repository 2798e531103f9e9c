"""The lmms-eval bridge: `molmo-eval export lmms-tasks` and the `molmo_reference` lmms-eval model.

The oracle throughout is molmo-eval's own run (`molmo_eval.evaluate`) on the same samples with the same
model outputs; the outputs are fabricated from the ground truth (right, wrong, unparseable, padded with
whitespace, failed), so every scoring path is exercised. Tests marked by `pytest.importorskip` need
lmms-eval (install recipe in docs/lmms-eval.md); the rest run without it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from molmo_eval import evaluate
from molmo_eval.cli import main
from molmo_eval.core import registry
from molmo_eval.core.config import build
from molmo_eval.core.types import CoordSpace
from molmo_eval.interop.lmms_hooks import ERROR_PREFIX, MANIFEST, forget_outputs, remember_output
from molmo_eval.interop.lmms_tasks import export_lmms_tasks, lmms_task_name
from molmo_eval.models.scripted import ScriptedModel
from molmo_eval.parsing.points import format_point

SPACE = CoordSpace.PERCENT
ALL = ["vqav2", "textvqa", "gqa", "pope", "mmbench", "refcoco", "refcoco+", "refcocog", "pointqa"]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from molmo_eval.reference_model.world.world import WorldSize, write_world

    root = tmp_path_factory.mktemp("world")
    write_world(root, WorldSize(vqav2=3, textvqa=3, gqa=4, refer=2, pope=2, mmbench=4, pointqa=6), seed=7)
    return root


def _samples(name: str, root: Path) -> list:
    task = registry.get_task(name)
    return [s for split in task.default_splits for s in task.load(root / task.data_dir, split)]


def fabricated(name: str, sample, k: int) -> dict:
    """A scripted output for the k-th sample: right, wrong, unparseable, right but padded, failed."""
    t, size = sample.target, sample.image_size
    kind = k % 5
    if kind == 4 and k % 10 == 4:
        return {"error": "scripted failure"}
    if kind == 2:
        return {"text": "" if k % 4 else "I cannot tell."}
    if name in ("refcoco", "refcoco+", "refcocog"):
        x1, y1, x2, y2 = t["box"]
        pt = ((x1 + x2) / 2, (y1 + y2) / 2) if kind != 1 else (x2 + 3, y2 + 3)
        right = format_point(pt, SPACE, size)
    elif name == "pointqa" and sample.split == "pointing":
        pts = t["points"] if kind != 1 else [(1.0, 1.0)]
        right = " ".join(format_point((p[0], p[1]), SPACE, size) for p in pts) or "There are none."
    elif name == "pope":
        right = {"yes": "Yes, there is.", "no": "No"}[t["label"]] if kind != 1 else "Yes"
    elif name == "mmbench":
        letters = sorted(t["choices"])
        right = t["answer"] if kind != 1 else letters[(letters.index(t["answer"]) + 1) % len(letters)]
    else:
        right = (t.get("answer") or list(t["answers"])[0]) if kind != 1 else "zebra"
    return {"text": f"  {right}\n" if kind == 3 else right}


def script(root: Path, names: list[str], path: Path) -> Path:
    with open(path, "w") as f:
        for name in names:
            for k, s in enumerate(_samples(name, root)):
                row = {"task": s.task, "split": s.split, "id": s.id, **fabricated(name, s, k)}
                f.write(json.dumps(row) + "\n")
    return path


def molmo_run(root: Path, names: list[str], outputs: Path, out: Path, **kw):
    model = ScriptedModel(outputs=str(outputs), coord_space=SPACE.value)
    return evaluate(names, model, data_root=root, use_cache=False, bootstrap=0, output_path=out, **kw)


def load_utils(export_dir: Path):
    """utils.py loaded from its file, as lmms-eval's `!function` loader does."""
    spec = importlib.util.spec_from_file_location("utils", export_dir / "utils.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def export(out: Path, names: list[str], world: Path, space: CoordSpace = SPACE, **kw) -> Path:
    export_lmms_tasks(out, build(names, data_root=world, **kw), prompt_style="default", coord_space=space)
    return out


def docs_of(export_dir: Path, task: str) -> list[dict]:
    text = (export_dir / f"{lmms_task_name(task)}.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def hooks_metrics(export_dir: Path, task: str, outputs: dict[str, dict]) -> dict[str, float]:
    """What lmms-eval computes: process_results per document (on stripped text, as lmms-eval passes it;
    the bridge's raw outputs remembered), then each metric's aggregation over all items."""
    utils = load_utils(export_dir)
    docs = docs_of(export_dir, task)
    items: dict[str, list] = defaultdict(list)
    for doc in reversed(docs):  # order must not matter (ranks gather in any order)
        row = outputs[doc["uid"]]
        text = ERROR_PREFIX + row["error"] if "error" in row else row["text"]
        remember_output(doc["uid"], text)
        for metric, item in utils.process_results(doc, [text.strip()]).items():
            items[metric].append(json.loads(json.dumps(item)))  # items cross processes as plain data
    return {m: utils.aggregate(its) for m, its in items.items()}


def same(a: float | None, b: float | None) -> bool:
    a = float("nan") if a is None else a
    b = float("nan") if b is None else b
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-12


def read_outputs(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {f"{r['task']}/{r['split']}/{r['id']}": r for r in rows}


# --- export --------------------------------------------------------------------------------------

def test_export_writes_one_task_per_benchmark_with_the_run_prompts_and_images(world, tmp_path):
    out = tmp_path / "lmms"
    exported = export_lmms_tasks(out, build(ALL, data_root=world), prompt_style="molmo", coord_space=SPACE)
    assert [e.task for e in exported] == ALL
    manifest = json.loads((out / MANIFEST).read_text())
    for name in ALL:
        task, samples = registry.get_task(name), _samples(name, world)
        entry = manifest["tasks"][name]
        assert entry["lmms_task"] == lmms_task_name(name) and entry["n"] == len(samples)
        docs = [json.loads(line) for line in (out / entry["data_file"]).read_text().splitlines()]
        assert [d["uid"] for d in docs] == [s.uid for s in samples]
        assert [d["prompt"] for d in docs] == [task.prompt(s, "molmo", space=SPACE) for s in samples]
        for d, s in zip(docs, samples):
            image = out / d["image"]
            assert image.is_file()
            if s.image.path is not None:
                assert image == Path(s.image.path)
            else:  # MMBench's base64 images are written byte for byte
                import base64
                assert image.read_bytes() == base64.b64decode(s.image.b64)
    assert lmms_task_name("refcoco+") == "molmo_refcoco_plus"
    assert "molmo_refcoco_plus.yaml" in os.listdir(out)


def test_exported_yaml_is_an_lmms_eval_task(world, tmp_path):
    yaml = pytest.importorskip("yaml")
    out = tmp_path / "lmms"
    export(out, ["pope", "refcoco"], world, limit=2)

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))
    cfg = yaml.load((out / "molmo_pope.yaml").read_text(), Loader=Loader)
    assert cfg["task"] == "molmo_pope" and cfg["tag"] == "molmo_all" and cfg["test_split"] == "test"
    assert cfg["dataset_path"] == "json" and (out / cfg["dataset_kwargs"]["data_files"]["test"]).is_file()
    assert cfg["output_type"] == "generate_until" and cfg["doc_to_text"] == "prompt"
    assert cfg["process_results"] == ("function", "utils.process_results")
    assert cfg["generation_kwargs"]["until"] == [] and cfg["generation_kwargs"]["max_new_tokens"] == 32
    names = [m["metric"] for m in cfg["metric_list"]]
    assert names == [m.name for m in registry.get_task("pope").metrics()]
    assert all(m["aggregation"] == ("function", "utils.aggregate") for m in cfg["metric_list"])
    docs = (out / "molmo_pope.jsonl").read_text().splitlines()
    assert len(docs) == 2 * 3  # --limit applies per split, as in a run


def test_generated_hooks_reproduce_molmo_eval_numbers(world, tmp_path):
    outputs = script(world, ALL, tmp_path / "outputs.jsonl")
    record = molmo_run(world, ALL, outputs, tmp_path / "run")
    export(tmp_path / "lmms", ALL, world)
    rows = read_outputs(outputs)
    for name in ALL:
        got = hooks_metrics(tmp_path / "lmms", name, rows)
        want = record.tasks[name].metrics
        assert set(got) == set(want), name
        bad = {m: (got[m], want[m].value) for m in want if not same(got[m], want[m].value)}
        assert not bad, (name, bad)
    assert record.n_failed > 0 and any(t.n_unparseable for t in record.tasks.values())  # paths were exercised


def test_stripping_alone_would_change_official_gqa_and_the_raw_output_is_restored(world, tmp_path):
    """GQA's eval.py compares raw strings, so " yes\\n" is wrong in a run; lmms-eval strips it."""
    samples = _samples("gqa", world)
    rows = {s.uid: {"text": f" {s.target['answer']}\n"} for s in samples}
    path = tmp_path / "pad.jsonl"
    path.write_text("".join(json.dumps({"task": "gqa", "split": s.split, "id": s.id, **rows[s.uid]}) + "\n"
                            for s in samples))
    record = molmo_run(world, ["gqa"], path, tmp_path / "run")
    assert record.tasks["gqa"].metrics["accuracy"].value == 0.0
    export(tmp_path / "lmms", ["gqa"], world)
    assert hooks_metrics(tmp_path / "lmms", "gqa", rows)["accuracy"] == 0.0
    forget_outputs()  # another harness's output (no raw text remembered) is scored as lmms-eval passes it
    utils = load_utils(tmp_path / "lmms")
    doc = next(json.loads(line) for line in (tmp_path / "lmms" / "molmo_gqa.jsonl").read_text().splitlines()
               if json.loads(json.loads(line)["sample"])["target"]["balanced"])
    assert utils.process_results(doc, [doc["target"]])["accuracy"]["values"]["accuracy"] == 1.0


def test_export_cli_and_its_refusals(world, tmp_path, capsys):
    out = tmp_path / "x"
    assert main(["export", "lmms-tasks", "--out", str(out), "--data-root", str(world), "--tasks", "pope",
                 "--limit", "1", "--model", "scripted", "--coord-space", "percent"]) == 0
    assert "molmo_pope" in capsys.readouterr().out
    assert json.loads((out / MANIFEST).read_text())["coord_space"] == "percent"
    assert main(["export", "lmms-tasks", "--out", str(out), "--data-root", str(world), "--tasks", "gqa",
                 "--limit", "1", "--model", "scripted"]) == 0  # an earlier export is replaced whole
    assert not (out / "molmo_pope.yaml").exists() and (out / "molmo_gqa.yaml").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(["export", "lmms-tasks", "--out", str(other), "--data-root", str(world), "--tasks", "pope",
                 "--model", "scripted"]) == 2
    assert "not empty" in capsys.readouterr().err and (other / "notes.txt").exists()
    assert main(["export", "lmms-tasks", "--out", str(tmp_path / "y"), "--data-root", str(world),
                 "--tasks", "pope", "--model", "scripted", "--coord-space", "inches"]) == 2


# --- the bridge, in process (needs lmms-eval) ---------------------------------------------------------

class _Instance:
    """The two things the bridge reads of an lmms-eval Instance."""

    def __init__(self, args: tuple):
        self.args = args


@pytest.fixture
def recorder():
    """A molmo-eval model registered in process that records its requests: text per uid from a dict."""
    seen: list = []
    replies: dict[str, object] = {}

    def factory(coord_space: str = "percent", **_: str) -> ScriptedModel:
        def fn(req):
            seen.append(req)
            reply = replies.get(req.uid, "no")
            if isinstance(reply, Exception):
                raise reply
            return reply

        return ScriptedModel(fn=fn, coord_space=coord_space, fingerprint="recorder")

    registry.register_model("recorder", factory)
    yield seen, replies
    registry.unregister(registry.MODEL_GROUP, "recorder")


def _bridge_on(export_dir: Path, task: str, **model_args):
    pytest.importorskip("lmms_eval")
    from molmo_eval.interop.lmms_bridge import MolmoReference

    lm = MolmoReference(**model_args)
    docs = docs_of(export_dir, task)
    lm.task_dict = {lmms_task_name(task): {"test": docs}}
    utils = load_utils(export_dir)
    insts = [_Instance((d["prompt"], {"max_new_tokens": 48, "until": ["\n\n"], "do_sample": False},
                        utils.doc_to_visual, i, lmms_task_name(task), "test")) for i, d in enumerate(docs)]
    return lm, docs, insts


def test_bridge_sends_the_run_request_and_returns_the_raw_text(world, tmp_path, recorder):
    from molmo_eval.core.types import ImageRef
    from molmo_eval.data.images import load_image
    from molmo_eval.interop import lmms_hooks

    seen, replies = recorder
    export(tmp_path / "lmms", ["refcoco", "mmbench"], world, limit=2)
    lm, docs, insts = _bridge_on(tmp_path / "lmms", "refcoco", model="recorder", batch_size="2")
    replies[docs[0]["uid"]] = '<point x="10" y="20">a</point>  '
    texts = lm.generate_until(insts)
    assert texts[0] == replies[docs[0]["uid"]] and texts[1:] == ["no"] * (len(docs) - 1)
    assert lmms_hooks.restore_output(docs[0]["uid"], texts[0].strip()) == texts[0]  # lmms-eval strips outputs
    assert [(r.uid, r.prompt) for r in seen] == [(d["uid"], d["prompt"]) for d in docs]
    want = load_image(ImageRef(path=docs[0]["image"]), decode=False)
    assert (seen[0].images[0].digest, seen[0].images[0].size) == (want.digest, want.size)
    assert seen[0].settings.max_new_tokens == 48 and seen[0].settings.stop == ("\n\n",)
    assert seen[0].settings.temperature == 0.0 and seen[0].answer_kind.value == "points"
    # MMBench images were inline base64: the bridge reads the exported file, the same bytes a run decodes
    lm, docs, insts = _bridge_on(tmp_path / "lmms", "mmbench", model="recorder")
    lm.generate_until(insts[:1])
    sample = _samples("mmbench", world)[0]
    assert seen[-1].images[0].digest == load_image(sample.image, decode=False).digest


def test_bridge_serves_lmms_eval_style_tasks_too(recorder):
    """A document of an lmms-eval task (no molmo-eval fields) with an in-memory PIL image."""
    pytest.importorskip("lmms_eval")
    import numpy as np
    from PIL import Image

    from molmo_eval.interop.lmms_bridge import MolmoReference

    seen, replies = recorder
    pixels = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    lm = MolmoReference(model="recorder")
    lm.task_dict = {"plain": {"test": [{"question": "what?", "image": Image.fromarray(pixels)}]}}
    replies["plain/test/0"] = "a cube"
    visual = lambda doc: [doc["image"].convert("RGB")]  # noqa: E731 - as lmms-eval task utils write it
    inst = _Instance(("what?", {"until": "\n"}, visual, 0, "plain", "test"))
    assert lm.generate_until([inst]) == ["a cube"]
    req = seen[0]
    assert req.uid == "plain/test/0" and req.answer_kind.value == "text" and req.settings.stop == ("\n",)
    assert req.images[0].size == (7, 5)
    decoded = np.asarray(Image.open(io.BytesIO(req.images[0].data)).convert("RGB"))
    assert (decoded == pixels).all()  # passed losslessly


def test_bridge_fails_one_sample_not_the_run(world, tmp_path, recorder):
    seen, replies = recorder
    export(tmp_path / "lmms", ["pope"], world, limit=1)
    lm, docs, insts = _bridge_on(tmp_path / "lmms", "pope", model="recorder", batch_size=8)
    docs[0] = {**docs[0], "image": str(tmp_path / "gone.jpg")}
    lm.task_dict["molmo_pope"]["test"] = docs
    replies[docs[1]["uid"]] = RuntimeError("backend down")
    texts = lm.generate_until(insts)
    assert texts[0].startswith(ERROR_PREFIX + "image:")
    assert texts[1] == ERROR_PREFIX + "RuntimeError: backend down"
    assert texts[2] == "no" and docs[0]["uid"] not in [r.uid for r in seen]
    utils = load_utils(tmp_path / "lmms")
    failed = utils.process_results(docs[1], [texts[1]])["f1"]
    assert failed["failed"] is True


def test_bridge_refuses_tasks_exported_for_another_coordinate_space(world, tmp_path, recorder):
    from molmo_eval.core.errors import ConfigError

    export(tmp_path / "lmms", ["pointqa"], world, space=CoordSpace.BINS, limit=1)
    lm, docs, insts = _bridge_on(tmp_path / "lmms", "pointqa", model="recorder", coord_space="percent")
    with pytest.raises(ConfigError, match="--coord-space percent"):
        lm.generate_until(insts)
    with pytest.raises(NotImplementedError, match="generates text only"):
        lm.loglikelihood(insts)
    assert str(lm.device) == "cpu" and lm.rank == 0 and lm.world_size == 1


def test_manifest_resolves_to_an_lmms_model_class():
    pytest.importorskip("lmms_eval")
    from lmms_eval.api.model import lmms
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    from molmo_eval.interop.lmms_bridge import manifest

    reg = ModelRegistryV2()
    reg.register_manifest(manifest())
    cls = reg.get_model_class("molmo_reference")  # imports and validates as `lmms-eval --model` does
    assert issubclass(cls, lmms) and cls.is_simple and cls.__name__ == "MolmoReference"


def test_batches_follow_the_run_batches_per_task():
    from molmo_eval.interop.lmms_bridge import batch_count, batches

    reqs = [_Instance(("p", {}, None, i, task, "test")) for i, task in enumerate("aaaaabbc")]
    sizes = [[r.args[3] for r in b] for b in batches(reqs, 2)]
    assert sizes == [[0, 1], [2, 3], [4], [5, 6], [7]]
    assert batches([], 4) == [] and [len(b) for b in batches(reqs, 100)] == [5, 2, 1]
    assert [batch_count(b) for b in ("1", 16, "auto", "auto:4", "0")] == [1, 16, 8, 4, 1]


def test_lmms_eval_offline_on_exported_tasks_equals_molmo_eval(world, tmp_path):
    pytest.importorskip("lmms_eval")
    from importlib import metadata

    assert any(ep.name == "molmo_reference" for ep in metadata.entry_points(group="lmms_eval.models")), \
        "the lmms_eval.models entry point of molmo-eval is not installed (pip install -e .)"
    outputs = script(world, ALL, tmp_path / "outputs.jsonl")
    record = molmo_run(world, ALL, outputs, tmp_path / "run")
    export(tmp_path / "lmms", ALL, world)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    script_path = Path(sys.executable).with_name("lmms-eval")  # the console script users run
    launcher = [str(script_path)] if script_path.exists() else [sys.executable, "-m", "lmms_eval"]
    cmd = [*launcher, "--model", "molmo_reference", "--model_args",
           f"model=scripted,outputs={outputs},coord_space={SPACE.value}", "--tasks", "molmo_all",
           "--include_path", str(tmp_path / "lmms"), "--batch_size", "8",
           "--output_path", str(tmp_path / "out"), "--verbosity", "WARNING"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    print(f"lmms-eval wall time: {time.perf_counter() - t0:.1f}s")
    found = list((tmp_path / "out").rglob("*results.json"))
    # lmms-eval exits 0 after a crash: the results file is the evidence
    assert proc.returncode == 0 and found, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(found[0].read_text(), parse_constant=float)["results"]
    for name in ALL:
        got = results[lmms_task_name(name)]
        want = record.tasks[name].metrics
        bad = {m: (got.get(f"{m},none"), mv.value) for m, mv in want.items()
               if not same(got.get(f"{m},none"), mv.value)}
        assert not bad, (name, bad)


# --- the lmms-eval variants against lmms-eval's own task pipeline ----------------------------------

PREDICTIONS = ["yes", " yes", "Yes.\n", "\tno ", "yes .", "T-shirt", " the t-shirt ", "Two", " 2\n", "two.",
               "The man's hat", "man's hat", "a hat", "hat!", "1,000", "red, white", "none", "", "   ", "Dark  red"]
GOLDS = ["yes", "t-shirt", "2", "man's hat", "1000", "red"]


def _lmms_task(tmp: Path, docs: list[dict], **config):
    """An lmms-eval ConfigurableTask over local JSON documents; scoring is lmms-eval's own
    (`process_results`, which strips the generation first, then the task's metric or hook)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lmms_eval.api.metrics  # noqa: F401  (registers exact_match)
    from lmms_eval.api.task import ConfigurableTask

    data = tmp / f"{config['task']}.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return ConfigurableTask(config={"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
                                    "test_split": "test", "output_type": "generate_until",
                                    "doc_to_text": "question", "doc_to_target": "answer", **config})


def _lmms_yaml(task_dir: str, name: str) -> dict:
    """One of lmms-eval's installed task YAMLs (its `!function` hooks read as their names)."""
    import lmms_eval
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    path = Path(lmms_eval.__file__).parent / "tasks" / task_dir / name
    return yaml.load(path.read_text(), Loader=Loader)


def test_lmms_eval_variants_score_as_lmms_eval_does(tmp_path, monkeypatch):
    """Every prediction x gold pair scored by lmms-eval 0.7.3's own pipeline (its GQA metric_list, its
    vqav2 process_results hook) equals the molmo-eval `lmms-eval` variant, whitespace included."""
    pytest.importorskip("lmms_eval")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    from lmms_eval.tasks.vqav2 import utils as vqav2_utils

    from molmo_eval.core.task import ParseContext
    from molmo_eval.core.types import Generation, Sample

    gqa = registry.get_task("gqa", "lmms-eval")
    lm_gqa = _lmms_task(tmp_path, [{"question": "q", "answer": g} for g in GOLDS], task="gqa_local",
                        metric_list=_lmms_yaml("gqa", "gqa.yaml")["metric_list"])
    vqa = registry.get_task("vqav2", "lmms-eval")
    answer_sets = [[g] * 10 for g in GOLDS] + [["2"] * 7 + ["two"] * 3, ["man's hat"] * 5 + ["hat"] * 5,
                                                ["red"] * 4 + ["dark red"] * 3 + ["maroon"] * 3]
    vqa_docs = [{"question": "q", "answer": a[0], "question_id": i,
                 "answers": [{"answer": x, "answer_id": k + 1, "answer_confidence": "yes"} for k, x in enumerate(a)]}
                for i, a in enumerate(answer_sets)]
    lm_vqa = _lmms_task(tmp_path, vqa_docs, task="vqav2_local", process_results=vqav2_utils.vqav2_process_results_val,
                        metric_list=_lmms_yaml("vqav2", "vqav2_val.yaml")["metric_list"])
    bad = []
    for pred in PREDICTIONS:
        gen = Generation(text=pred)
        for doc in lm_gqa.test_docs():
            s = Sample(id="q", task="gqa", split="testdev_balanced", image=None, prompt_fields={},
                       target={"answer": doc["answer"], "balanced": True, "entailed": [], "group": None},
                       meta={"structural": "query", "semantic": "attr"})
            ours = gqa.score(s, gqa.parse(s, gen, ParseContext())).values["accuracy"]
            theirs = float(lm_gqa.process_results(doc, [pred])["exact_match"])
            if ours != theirs:
                bad.append(("gqa", pred, doc["answer"], ours, theirs))
        for doc in lm_vqa.test_docs():
            s = Sample(id=str(doc["question_id"]), task="vqav2", split="val2014", image=None, prompt_fields={},
                       target={"answers": [a["answer"] for a in doc["answers"]], "loo_groups": None})
            ours = vqa.score(s, vqa.parse(s, gen, ParseContext())).values["accuracy"]
            theirs = lm_vqa.process_results(json.loads(json.dumps(doc)), [pred])["exact_match"]
            if abs(ours - theirs) > 1e-12:
                bad.append(("vqav2", pred, doc["answers"][0]["answer"], ours, theirs))
    assert not bad, bad

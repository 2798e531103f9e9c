"""Issue 16, at the level of runs: what a run streams to its folder is what the folder writer makes of
the same lines; the task timer holds aggregation and bootstrap; a run answered from the cache builds
no model, decodes no image and does not re-hash the embedded world; ``score --json`` computes CIs only
when asked; a command line imports the command it names."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from toy import oracle_text

from molmo_eval.cli import _command_of, main
from molmo_eval.core.config import build
from molmo_eval.core.types import AnswerKind, CoordSpace, Generation
from molmo_eval.data import embedded, images
from molmo_eval.data.embedded import default_data_root
from molmo_eval.metrics import grounding, stats
from molmo_eval.models.scripted import ScriptedModel
from molmo_eval.run import records, rundir
from molmo_eval.run.runner import run
from molmo_eval.run.summary import markdown_report

TASKS = "vqav2,gqa,mmbench,pope"  # two with cross-sample columns (finalize), one with split metrics


def _answers(req) -> str:
    return ("yes", "no", "A", "B", "2", "white")[len(req.prompt) % 6]


def test_the_streamed_run_folder_is_what_the_folder_writer_makes_of_its_lines(tmp_path: Path) -> None:
    cfg = build(TASKS, model="scripted", output_path=tmp_path / "run", cache_dir=tmp_path / "c", limit=40,
                bootstrap=50)
    out = run(cfg, model=ScriptedModel(fn=_answers, fingerprint="t"), show_progress=False)
    lines = out.lines
    assert len(lines) == out.record.counts["samples"] == sum(t.n for t in out.record.tasks.values())
    again = rundir.write_run(tmp_path / "again", out.record, lines, markdown_report(out.record))
    for name in (records.SAMPLES, records.SCORES):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name
    assert again.files == out.record.files
    assert not list((tmp_path / "run").glob(".*.tmp"))
    no_log = build(TASKS, model="scripted", output_path=tmp_path / "nolog", use_cache=False, limit=10,
                   bootstrap=0, log_samples=False)
    quiet = run(no_log, model=ScriptedModel(fn=_answers, fingerprint="t"), show_progress=False)
    assert quiet.lines == [] and sorted(p.name for p in (tmp_path / "nolog").iterdir()) == ["report.md",
                                                                                           "results.json"]


def test_the_task_timer_holds_aggregation_and_bootstrap(toy_task, toy_root: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    real = stats.summarize

    def slow(*args, **kwargs):
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(stats, "summarize", slow)
    cfg = build("toy", model="scripted", data_root=toy_root, output_path=tmp_path / "o", use_cache=False)
    rec = run(cfg, model=ScriptedModel(fn=lambda r: oracle_text(r.uid, toy_root)), show_progress=False).record
    assert rec.tasks["toy"].seconds >= 0.3


# --- a run answered from the response cache -----------------------------------------------------

@dataclass
class PixelModel:
    """A model that needs pixels and records whether it got them."""

    name = "pixels"
    fingerprint = "pixels-1"
    coord_space = CoordSpace.PIXELS
    prompt_style = "default"
    needs_pixels = True

    def __post_init__(self) -> None:
        self.seen: list[bool] = []

    def generate(self, requests):
        self.seen += [all(im.pixels is not None for im in r.images) for r in requests]
        return [Generation(text="red") for _ in requests]


def test_images_are_decoded_only_for_the_model(toy_task, toy_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = build("toy", model="pixels", data_root=toy_root, output_path=tmp_path / "o", cache_dir=tmp_path / "c",
                batch_size=4, bootstrap=0)
    first = PixelModel()
    run(cfg, model=first, show_progress=False)
    assert first.seen and all(first.seen)  # decoded on demand, then ahead

    def no_decoding(*args):
        raise AssertionError("a run answered from the cache decoded an image")

    monkeypatch.setattr(images, "_decode", no_decoding)
    images._DECODED.clear()
    again = PixelModel()
    rec = run(cfg, model=again, show_progress=False).record
    assert again.seen == [] and rec.counts["model_calls"] == 0 and rec.status == "ok"


def test_an_image_that_cannot_be_decoded_fails_its_sample_alone(toy_task, toy_root: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = images._decode
    victim = (toy_root / "toy" / "images" / "a_3.png").read_bytes()

    def decode(data: bytes, where: str):
        if data == victim:
            raise images.DataError("unreadable image (OSError: truncated)", path=where)
        return real(data, where)

    monkeypatch.setattr(images, "_decode", decode)
    images._DECODED.clear()
    images._load_image_file.cache_clear()
    for use_cache in (True, False):  # decoded on demand for the model, or ahead while it works
        cfg = build("toy", model="pixels", data_root=toy_root, output_path=tmp_path / str(use_cache),
                    use_cache=use_cache, cache_dir=tmp_path / "c", bootstrap=0)
        out = run(cfg, model=PixelModel(), show_progress=False)
        failed = [ln for ln in out.lines if ln["error"]]
        same = [str(i) for i in range(40) if (toy_root / "toy" / "images" / f"a_{i}.png").read_bytes() == victim]
        assert [ln["id"] for ln in failed] == same and all(ln["error"].startswith("image:") for ln in failed)
        assert out.record.status == "partial" and out.record.n_failed == len(same) > 0


torch_missing = pytest.mark.skipif(__import__("importlib").util.find_spec("torch") is None, reason="needs torch")


@torch_missing
def test_the_reference_model_is_built_only_for_a_request_the_cache_does_not_answer(tmp_path: Path,
                                                                                   monkeypatch) -> None:
    from molmo_eval.models import reference
    from molmo_eval.reference_model import checkpoint

    assert reference.checkpoint_digest(reference.bundled_checkpoint()) == checkpoint.digest(
        reference.bundled_checkpoint())
    code = ("import sys; from molmo_eval.models.reference import ReferenceModel; m = ReferenceModel(); "
            "print(m.fingerprint, 'torch' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert shown[1] == "False" and shown[0].startswith("reference-")
    cfg = build("pope", model="reference", output_path=tmp_path / "o", cache_dir=tmp_path / "c", limit=4,
                bootstrap=0, model_args={"threads": "1"})
    first = run(cfg, show_progress=False).record
    assert first.counts["model_calls"] > 0 and first.counts["model_loads"] == 1

    def no_loading(self):
        raise AssertionError("the model was built for a run answered from the cache")

    monkeypatch.setattr(reference.ReferenceModel, "_load", no_loading)
    again = run(cfg, show_progress=False).record
    assert again.counts["model_calls"] == again.counts["model_loads"] == 0
    assert again.tasks["pope"].metrics == first.tasks["pope"].metrics


def test_the_embedded_world_is_re_hashed_only_when_a_file_changed(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from molmo_eval.reference_model.world import world as world_mod
    from molmo_eval.reference_model.world.world import WorldSize

    monkeypatch.setenv("MOLMO_EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(world_mod.SIZES, "mini", WorldSize(vqav2=2, textvqa=2, gqa=2, refer=1, pope=3, mmbench=3,
                                                           pointqa=4))
    monkeypatch.setattr(embedded, "REFERENCE_DIGESTS", {})
    root = embedded.default_data_root()
    hashed = []
    real = embedded.file_sha256
    monkeypatch.setattr(embedded, "file_sha256", lambda p: hashed.append(p) or real(p))
    assert embedded.default_data_root() == root and hashed == []
    victim = root / "pope" / "coco_pope_random.json"
    victim.write_bytes(victim.read_bytes())  # same bytes, new modification time: verified again in full
    assert embedded.default_data_root() == root and len(hashed) == len(embedded.list_files(root))
    hashed.clear()
    assert embedded.default_data_root() == root and hashed == []


def test_the_lsap_solver_loaded_alone_is_scipys() -> None:
    rng = np.random.default_rng(0)
    mats = [rng.integers(0, 3, size=(rng.integers(1, 7), rng.integers(1, 7))).astype(float) for _ in range(500)]
    mats += [rng.random((5, 8)), rng.random((8, 5)), np.zeros((4, 4))]
    solve = grounding.linear_sum_assignment()
    got = [solve(m) for m in mats]
    from scipy.optimize import linear_sum_assignment

    for m, (r, c) in zip(mats, got):
        r2, c2 = linear_sum_assignment(m)
        assert r.tolist() == r2.tolist() and c.tolist() == c2.tolist()


# --- score --predictions ---------------------------------------------------------------------------

def _predictions(tmp_path: Path) -> Path:
    qs = json.loads((default_data_root() / "vqav2" / "v2_OpenEnded_mscoco_val2014_questions.json").read_text())
    path = tmp_path / "preds.json"
    path.write_text(json.dumps([{"question_id": q["question_id"], "answer": ("yes", "2", "red")[i % 3]}
                                for i, q in enumerate(qs["questions"])]))
    return path


def test_score_json_computes_cis_only_when_asked(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    preds = _predictions(tmp_path)
    args = ["score", "--task", "vqav2", "--predictions", str(preds), "--json"]
    assert main([*args, "--ci"]) == 0
    with_ci = json.loads(capsys.readouterr().out)
    lo, hi = with_ci["ci"]["accuracy"]
    assert lo < with_ci["metrics"]["accuracy"] < hi

    real = stats.bootstrap_ci

    def no_bootstrap(metric, cols, seed, n_boot=stats.N_BOOT, alpha=stats.ALPHA):
        assert n_boot <= 0, "a bootstrap nobody asked for"
        return real(metric, cols, seed, n_boot, alpha)

    monkeypatch.setattr(stats, "bootstrap_ci", no_bootstrap)
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "ci" not in plain and plain == {k: v for k, v in with_ci.items() if k != "ci"}


def test_scoring_in_chunks_changes_nothing(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from molmo_eval.commands import score

    args = ["score", "--task", "vqav2", "--predictions", str(_predictions(tmp_path)), "--json"]
    assert main(args) == 0
    whole = capsys.readouterr().out
    monkeypatch.setattr(score, "SCORE_CHUNK", 7)
    assert main(args) == 0
    assert capsys.readouterr().out == whole


def test_equal_prediction_texts_share_one_generation(tmp_path: Path) -> None:
    from molmo_eval.core import registry
    from molmo_eval.run.loading import load_split

    task = registry.get_task("vqav2")
    samples, _ = load_split(task, default_data_root() / "vqav2", "val2014")
    preds = task.read_predictions(_predictions(tmp_path), samples)
    texts = {g.text: g for g in preds.values()}
    assert set(texts) == {"yes", "2", "red"} and all(g is texts[g.text] for g in preds.values())
    assert all(g == Generation(g.text) for g in preds.values())


def test_the_console_score_leaves_its_data_to_the_process_end_with_its_output_whole(tmp_path: Path, capsys) -> None:
    """``python -m molmo_eval score`` ends by `os._exit` (no object-by-object teardown of the split), its
    output flushed and written out whole, its exit code kept; called in-process nothing is kept."""
    from molmo_eval.core import heap

    preds = _predictions(tmp_path)
    args = ["score", "--task", "vqav2", "--predictions", str(preds), "--json"]
    assert main(args) == 0
    expected = json.loads(capsys.readouterr().out)
    assert not heap.quick_exit_wanted() and heap._kept == []  # main(argv): the caller's process goes on
    marker = tmp_path / "atexit-ran"
    code = (f"import atexit, pathlib, runpy, sys; sys.argv[1:] = {args!r}; "
            f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes')); "
            "runpy.run_module('molmo_eval', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == expected
    assert marker.read_text() == "yes"  # atexit handlers still run
    bad = subprocess.run([sys.executable, "-m", "molmo_eval", *args[:-1], "--allow-missing", "--json",
                          "--predictions", str(tmp_path / "nosuch.json")], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "missing prediction file" in bad.stderr


# --- the command line ------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "command"), [
    (["score", "--task", "x"], "score"), (["--tasks", "pope"], "run"), (["run", "--tasks", "pope"], "run"),
    (["--debug", "score"], None), (["--help"], None), ([], None), (["tasks"], "tasks"), (["nosuch"], None)])
def test_a_command_line_builds_the_parser_of_the_command_it_names(argv: list[str], command: str | None) -> None:
    assert _command_of(argv) == command


def test_a_command_imports_no_other_command() -> None:
    code = ("import sys\nfrom molmo_eval.cli import main\ntry:\n    main(['score', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('molmo_eval.commands.')), file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "'molmo_eval.commands.gate'" not in res.stderr and "'molmo_eval.commands.score'" in res.stderr


def test_pope_scores_share_their_values() -> None:
    from molmo_eval.core import registry
    from molmo_eval.run.loading import load_split

    task = registry.get_task("pope")
    samples = load_split(task, default_data_root() / "pope", "random")[0]
    from molmo_eval.core.types import Answer

    scores = [task.score(s, Answer(AnswerKind.YESNO, i % 2 == 0)) for i, s in enumerate(samples)]
    assert len({id(sc.values) for sc in scores}) <= 4 < len(scores)

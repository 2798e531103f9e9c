"""A finished run re-run unchanged is answered from its run folder (`molmo_eval.run.reuse`): no split
loaded, nothing scored again, the record and files a re-run from the cache would write; any changed
input (model, data, limit, --no-cache, --overwrite, an unfinished run, an edited run file) runs it the
whole way."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from molmo_eval import evaluate
from molmo_eval.run import runner


@pytest.fixture
def loads(monkeypatch):
    """How many times the runner loaded the splits (the whole way) since the fixture was made."""
    calls = []
    real = runner.prepare_tasks

    def spy(cfg):
        calls.append(cfg)
        return real(cfg)

    monkeypatch.setattr(runner, "prepare_tasks", spy)
    return calls


def script(path: Path, root: Path, wrong_every: int = 3) -> Path:
    rows = json.loads((root / "toy" / "questions_a.json").read_text())
    path.write_text("".join(json.dumps({"id": str(r["id"]), "text": r["answer"] if r["id"] % wrong_every else "purple"})
                            + "\n" for r in rows))
    return path


def later(path: Path) -> None:
    """Give ``path`` a modification time clearly after anything written so far."""
    t = time.time_ns() + 5_000_000_000
    os.utime(path, ns=(t, t))


def setup(tmp_path, toy_root):
    outputs = script(tmp_path / "out.jsonl", toy_root)
    common = dict(model_args={"outputs": str(outputs)}, data_root=toy_root, output_path=tmp_path / "run",
                  cache_dir=tmp_path / "cache", bootstrap=50)
    return outputs, common


def comparable(run_dir: Path) -> dict:
    rec = json.loads((run_dir / "results.json").read_text())
    for k in ("run_id", "created", "timings"):
        rec.pop(k)
    for t in rec["tasks"].values():
        t.pop("seconds")
    rec["files"].pop("report.md")
    return rec


def test_finished_run_rerun_is_reused_and_equals_a_rerun_from_the_cache(tmp_path, toy_task, toy_root, loads,
                                                                          monkeypatch):
    _, common = setup(tmp_path, toy_root)
    first = evaluate("toy", "scripted", **common)
    assert first.status == "ok" and first.counts["model_calls"] == 40 and len(loads) == 1
    first_lines = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    scores = (tmp_path / "run" / "scores.json").read_bytes()

    again = evaluate("toy", "scripted", **common)
    assert len(loads) == 1  # no split loaded, nothing scored again
    assert again.run_id != first.run_id
    assert again.tasks["toy"].to_json() == first.tasks["toy"].to_json()  # metrics, CIs, breakdowns, seconds
    assert again.counts == {"samples": 40, "model_calls": 0, "cache_hits": 40}
    lines = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert all(ln.pop("cached") for ln in lines) and not any(ln.pop("cached") for ln in first_lines)
    assert lines == first_lines and (tmp_path / "run" / "scores.json").read_bytes() == scores
    reused = comparable(tmp_path / "run")

    monkeypatch.setenv("MOLMO_EVAL_NO_REUSE", "1")  # the same re-run the whole way, from the cache
    whole = evaluate("toy", "scripted", **common)
    assert len(loads) == 2 and whole.counts["model_calls"] == 0
    assert comparable(tmp_path / "run") == reused


def test_reused_run_reads_back_and_its_folder_verifies(tmp_path, toy_task, toy_root, loads):
    from molmo_eval.run import records

    _, common = setup(tmp_path, toy_root)
    evaluate("toy", "scripted", **common)
    evaluate("toy", "scripted", **common)
    evaluate("toy", "scripted", **common)  # a reused run is reused again
    assert len(loads) == 1
    run = records.read_run(tmp_path / "run")
    records.verify_files(tmp_path / "run", run.record)
    assert len(list(records.iter_samples(tmp_path / "run"))) == 40


def test_changed_model_is_not_reused(tmp_path, toy_task, toy_root, loads):
    outputs, common = setup(tmp_path, toy_root)
    first = evaluate("toy", "scripted", **common)
    script(outputs, toy_root, wrong_every=2)  # the same --model-args, another model (fingerprint)
    again = evaluate("toy", "scripted", **common)
    assert len(loads) == 2 and again.counts["model_calls"] == 40
    assert again.tasks["toy"].metrics["accuracy"].value != first.tasks["toy"].metrics["accuracy"].value


@pytest.mark.parametrize("what", ["annotations", "image"])
def test_changed_task_data_is_not_reused(tmp_path, toy_task, toy_root, loads, what):
    _, common = setup(tmp_path, toy_root)
    evaluate("toy", "scripted", **common)
    if what == "annotations":
        path = toy_root / "toy" / "questions_a.json"
        rows = json.loads(path.read_text())
        rows[0]["answer"] = "blue" if rows[0]["answer"] != "blue" else "red"
        path.write_text(json.dumps(rows))
    else:  # the same annotations, one image replaced
        from PIL import Image

        Image.new("RGB", (9, 8), (1, 2, 3)).save(toy_root / "toy" / "images" / "a_1.png")
        later(toy_root / "toy" / "images" / "a_1.png")
    again = evaluate("toy", "scripted", **common)
    assert len(loads) == 2 and again.counts["model_calls"] == (1 if what == "image" else 0)


def test_changed_source_is_not_reused(tmp_path, toy_task, toy_root, loads):
    import toy

    _, common = setup(tmp_path, toy_root)
    evaluate("toy", "scripted", **common)
    source = Path(toy.__file__)
    stat = source.stat()
    try:
        later(source)  # the task's code edited after the run
        evaluate("toy", "scripted", **common)
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert len(loads) == 2


def test_other_limit_no_cache_and_overwrite_are_not_reused(tmp_path, toy_task, toy_root, loads):
    _, common = setup(tmp_path, toy_root)
    evaluate("toy", "scripted", **common)
    fewer = evaluate("toy", "scripted", **{**common, "limit": 10, "overwrite": True})
    assert len(loads) == 2 and fewer.tasks["toy"].n == 10
    fewer = evaluate("toy", "scripted", **{**common, "limit": 10, "overwrite": True})
    assert len(loads) == 3  # --overwrite always runs the whole way
    nocache = {**common, "use_cache": False, "output_path": tmp_path / "nc"}
    evaluate("toy", "scripted", **nocache)
    again = evaluate("toy", "scripted", **nocache)
    assert len(loads) == 5 and again.counts["model_calls"] == 40


def test_unfinished_or_edited_run_is_not_reused(tmp_path, toy_task, toy_root, loads):
    outputs, common = setup(tmp_path, toy_root)
    rows = [json.loads(x) for x in outputs.read_text().splitlines()]
    rows[3]["error"] = "boom"  # one sample fails: status partial
    outputs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    partial = evaluate("toy", "scripted", **common)
    assert partial.status == "partial"
    evaluate("toy", "scripted", **common)
    assert len(loads) == 2

    _, common = setup(tmp_path, toy_root)
    common["output_path"] = tmp_path / "run2"
    evaluate("toy", "scripted", **common)
    scores = tmp_path / "run2" / "scores.json"
    scores.write_text(scores.read_text().replace("1.0", "0.0", 1))  # a run file edited by hand
    evaluate("toy", "scripted", **common)
    assert len(loads) == 4

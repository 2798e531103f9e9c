"""A run folder is one run, and what reads it verifies it (issue 14, parts 2 and 4): a reused output
path, a kill while the folder is written, tampered or mixed files, stale temporary files, and the exit
code of a run whose samples failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from toy import oracle_text

from molmo_eval.cli import main
from molmo_eval.core.config import build
from molmo_eval.core.errors import ConfigError, DataError
from molmo_eval.gate.baseline import load
from molmo_eval.models.scripted import ScriptedModel
from molmo_eval.run import records, rundir
from molmo_eval.run.runner import run


def cfg(root: Path, out: Path, **kw):
    return build("toy", model="scripted", data_root=root, output_path=out, bootstrap=0, **kw)


def oracle(root: Path, wrong: set[int] = frozenset()):  # type: ignore[assignment]
    return lambda r: "purple" if int(r.uid.rsplit("/", 1)[1]) in wrong else oracle_text(r.uid, root)


def cli(*args: str) -> int:
    return main([*args])


# --- a reused output path --------------------------------------------------------------------------

@pytest.mark.parametrize("change", [{"variants": {"toy": "lenient"}}, {"limit": 5}, {"seed": 3},
                                    {"splits": {"toy": ("b",)}}, {"limit": 0.5},
                                    {"gen_kwargs": {"max_new_tokens": 9}}])
def test_a_folder_holding_another_run_is_refused_unless_overwrite(toy_task, toy_root, tmp_path, change):
    out, cache = tmp_path / "o", tmp_path / "c"
    first = run(cfg(toy_root, out, cache_dir=cache), model=ScriptedModel(fn=oracle(toy_root)), show_progress=False)
    model = ScriptedModel(fn=oracle(toy_root), fingerprint="other")
    with pytest.raises(ConfigError, match="holds another run .*--overwrite"):
        run(cfg(toy_root, out, cache_dir=cache, **change), model=model, show_progress=False)
    assert model.calls == 0 and records.read_run(out).record.run_id == first.record.run_id  # untouched
    second = run(cfg(toy_root, out, cache_dir=cache, overwrite=True, **change), model=model, show_progress=False)
    assert records.read_run(out).record.run_id == second.record.run_id


def test_the_same_command_again_is_the_same_run(toy_task, toy_root, tmp_path):
    """Running the same evaluation into its own folder resumes from the cache and replaces the run
    (this is how failed samples are retried), without --overwrite."""
    out, cache = tmp_path / "o", tmp_path / "c"
    a = run(cfg(toy_root, out, cache_dir=cache), model=ScriptedModel(fn=oracle(toy_root)), show_progress=False)
    again = ScriptedModel(fn=oracle(toy_root))
    b = run(cfg(toy_root, out, cache_dir=cache, batch_size=3, workers=2), model=again, show_progress=False)
    assert again.calls == 0 and b.record.run_id != a.record.run_id
    assert records.read_run(out).record.run_id == b.record.run_id


def test_cli_refuses_a_reused_output_path_with_exit_2(toy_task, toy_root, tmp_path, capsys):
    common = ["--tasks", "toy", "--model", "scripted", "--data-root", str(toy_root), "--bootstrap", "0",
              "--cache-dir", str(tmp_path / "c"), "--output-path", str(tmp_path / "o")]
    script = tmp_path / "s.jsonl"
    script.write_text("".join(json.dumps({"id": str(i), "text": "red"}) + "\n" for i in range(40)))
    assert cli(*common, "--model-args", f"outputs={script}") == 0
    assert cli(*common, "--model-args", f"outputs={script}", "--limit", "3") == 2
    assert "holds another run" in capsys.readouterr().err
    assert cli(*common, "--model-args", f"outputs={script}", "--limit", "3", "--overwrite") == 0
    assert records.read_run(tmp_path / "o").record.tasks["toy"].n == 3


@pytest.mark.parametrize("name", [records.RESULTS, records.SAMPLES])
def test_a_run_file_that_is_not_a_regular_file_is_never_replaced(toy_task, toy_root, tmp_path, name):
    out = tmp_path / "o"
    (out / name).mkdir(parents=True)
    model = ScriptedModel(fn=oracle(toy_root))
    with pytest.raises(ConfigError, match=f"{name} is not a regular file"):
        run(cfg(toy_root, out, use_cache=False, overwrite=True), model=model, show_progress=False)
    assert model.calls == 0 and (out / name).is_dir()


def test_a_run_without_samples_replaces_the_old_samples(toy_task, toy_root, tmp_path):
    out = tmp_path / "o"
    run(cfg(toy_root, out, use_cache=False), model=ScriptedModel(fn=oracle(toy_root)), show_progress=False)
    assert (out / records.SAMPLES).is_file()
    run(cfg(toy_root, out, use_cache=False, log_samples=False), model=ScriptedModel(fn=oracle(toy_root)),
        show_progress=False)
    assert not (out / records.SAMPLES).exists() and not (out / records.SCORES).exists()
    records.read_run(out)  # the record lists only what the folder holds


def test_stale_temporary_files_are_removed_by_the_next_run(toy_task, toy_root, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    stale = [out / ".samples.jsonl.x1y2.tmp", out / ".results.json.abc.tmp", out / ".report.md.q.tmp"]
    for p in stale:
        p.write_text("half a file")
    keep = out / "notes.txt"
    keep.write_text("mine")
    run(cfg(toy_root, out, use_cache=False), model=ScriptedModel(fn=oracle(toy_root)), show_progress=False)
    assert not any(p.exists() for p in stale) and keep.read_text() == "mine"
    assert not list(out.glob(".*.tmp"))


# --- a kill while the folder is written -------------------------------------------------------------

class Killed(BaseException):
    """Stands for SIGKILL at one point of the folder write (nothing after it runs)."""


def test_a_kill_at_any_step_of_the_write_leaves_the_old_run_or_no_run(toy_task, toy_root, tmp_path, monkeypatch):
    import os

    out, cache = tmp_path / "o", tmp_path / "c"
    old = run(cfg(toy_root, out, cache_dir=cache), model=ScriptedModel(fn=oracle(toy_root, {1, 2})),
              show_progress=False).record
    steps = 0
    real_replace, real_unlink = os.replace, os.unlink

    def counting(fn):
        def op(*a, **kw):
            nonlocal steps
            steps += 1
            if steps == kill_at:
                raise Killed
            return fn(*a, **kw)
        return op

    monkeypatch.setattr(rundir.os, "replace", counting(real_replace))
    monkeypatch.setattr(rundir.os, "unlink", counting(real_unlink))
    seen = set()
    for kill_at in range(1, 12):
        steps = 0
        snapshot = tmp_path / f"snap{kill_at}"
        shutil.copytree(out, snapshot)
        model = ScriptedModel(fn=oracle(toy_root))  # a different run: every answer right
        try:
            run(cfg(toy_root, snapshot, overwrite=True, use_cache=False), model=model, show_progress=False)
            state = "new"
        except Killed:
            try:
                rec = records.read_run(snapshot).record  # verifies every file against the record
            except DataError as e:
                assert "incomplete run folder" in str(e)
                state = "none"
            else:
                assert rec.run_id == old.run_id
                state = "old"
        if state == "new":
            assert records.read_run(snapshot).record.tasks["toy"].metrics["accuracy"].value == 1.0
        seen.add(state)
    assert seen == {"old", "none", "new"}


def test_a_folder_that_cannot_be_written_is_a_clear_error_and_the_rerun_finishes(toy_task, toy_root, tmp_path,
                                                                                 monkeypatch):
    out, cache = tmp_path / "o", tmp_path / "c"
    real = records.StagedFile.write

    def full_disk(self, chunk):  # samples.jsonl is written as the samples are scored
        if self.path.name == records.SAMPLES:
            raise OSError(28, "No space left on device")
        return real(self, chunk)

    monkeypatch.setattr(records.StagedFile, "write", full_disk)
    with pytest.raises(rundir.FolderWriteError, match="No space left on device.*same command") as e:
        run(cfg(toy_root, out, cache_dir=cache), model=ScriptedModel(fn=oracle(toy_root)), show_progress=False)
    assert e.value.exit_code == 1 and not list(out.glob(".*.tmp"))
    monkeypatch.setattr(records.StagedFile, "write", real)
    again = ScriptedModel(fn=oracle(toy_root))
    run(cfg(toy_root, out, cache_dir=cache), model=again, show_progress=False)
    assert again.calls == 0 and records.read_run(out).record.status == "ok"


# --- files that disagree with their record ------------------------------------------------------------

def _two_runs(root: Path, tmp: Path) -> tuple[Path, Path]:
    """A baseline at 80% and a regressed run at 55% of the same 40 samples."""
    base = tmp / "base"
    run(cfg(root, base, use_cache=False), model=ScriptedModel(fn=oracle(root, set(range(8)))), show_progress=False)
    cur = tmp / "cur"
    run(cfg(root, cur, use_cache=False), model=ScriptedModel(fn=oracle(root, set(range(18)))), show_progress=False)
    return base, cur


def _lines(p: Path) -> list[str]:
    return (p / records.SAMPLES).read_text().splitlines(keepends=True)


def _delete_12(cur: Path, base: Path) -> str:
    (cur / records.SAMPLES).write_text("".join(_lines(cur)[12:]))
    return records.SAMPLES


def _duplicate_5(cur: Path, base: Path) -> str:
    (cur / records.SAMPLES).write_text("".join(_lines(cur) + _lines(cur)[:5]))
    return records.SAMPLES


def _flip_a_score(cur: Path, base: Path) -> str:  # the same size: only the digest tells
    text = (cur / records.SAMPLES).read_text()
    (cur / records.SAMPLES).write_text(text.replace('"accuracy": 0.0', '"accuracy": 1.0', 1))
    return records.SAMPLES


def _old_record_beside_new_files(cur: Path, base: Path) -> str:  # a kill between renames, old code
    shutil.copy(base / records.RESULTS, cur / records.RESULTS)
    return records.SAMPLES


def _edit_scores_json(cur: Path, base: Path) -> str:
    doc = json.loads((cur / records.SCORES).read_text())
    doc["toy"]["scores"]["accuracy"] = [1.0] * len(doc["toy"]["uid"])
    (cur / records.SCORES).write_text(json.dumps(doc))
    return records.SCORES


@pytest.mark.parametrize("tamper", [_delete_12, _duplicate_5, _flip_a_score, _old_record_beside_new_files,
                                    _edit_scores_json])
def test_gate_score_and_report_refuse_a_folder_that_disagrees_with_its_record(toy_task, toy_root, tmp_path,
                                                                             capsys, tamper):
    base, cur = _two_runs(toy_root, tmp_path)
    name = tamper(cur, base)
    capsys.readouterr()
    assert cli("gate", "--baseline", str(base), "--current", str(cur)) == 2
    assert name in capsys.readouterr().out
    for argv in (["score", "--run", str(cur)], ["report", str(base), str(cur)]):
        assert cli(*argv) == 2, argv
        err = capsys.readouterr().err
        assert name in err and "Traceback" not in err, (argv, err)


def test_the_gate_recomputes_metrics_from_per_sample_scores(toy_task, toy_root, tmp_path, capsys):
    """results.json of the regressed run edited to say the baseline's numbers: still no pass."""
    base, cur = _two_runs(toy_root, tmp_path)
    assert cli("gate", "--baseline", str(base), "--current", str(cur)) == 1  # 80% -> 55%: a regression
    rec = json.loads((cur / records.RESULTS).read_text())
    rec["tasks"]["toy"]["metrics"] = json.loads((base / records.RESULTS).read_text())["tasks"]["toy"]["metrics"]
    (cur / records.RESULTS).write_text(json.dumps(rec))
    capsys.readouterr()
    assert cli("gate", "--baseline", str(base), "--current", str(cur)) == 2
    assert "per-sample scores give" in capsys.readouterr().out


@pytest.mark.parametrize("edit,field", [
    (lambda d: d.update(schema_version="1"), "schema_version"),
    (lambda d: d.update(schema_version=True), "schema_version"),
    (lambda d: d.update(status="great"), "status"),
    (lambda d: d.pop("files"), "files"),
    (lambda d: d["tasks"]["toy"].update(n="many"), None),
    # the keys written for lmms-eval readers (issue 15): the gate reads directions from "configs"
    (lambda d: d["configs"]["toy"]["metric_list"][0].update(higher_is_better="up"), "configs.toy.metric_list"),
    (lambda d: d["configs"].update(toy=[]), "configs.toy"),
    (lambda d: d.update(world_size=0), "world_size"),
    (lambda d: d["n-samples"]["toy"].update(original="40"), "n-samples.toy"),
    (lambda d: d.update(package_versions="0.1"), "package_versions"),
    (lambda d: d.update(tasks=[]), None),
])
def test_a_malformed_record_is_a_data_error(toy_task, toy_root, tmp_path, capsys, edit, field):
    out = tmp_path / "o"
    run(cfg(toy_root, out, use_cache=False), model=ScriptedModel(fn=oracle(toy_root)), show_progress=False)
    doc = json.loads((out / records.RESULTS).read_text())
    edit(doc)
    (out / records.RESULTS).write_text(json.dumps(doc))
    with pytest.raises(DataError) as e:
        records.read_run(out)
    assert "results.json" in str(e.value) and (field is None or f"field {field!r}" in str(e.value))
    for argv in (["score", "--run", str(out)], ["report", str(out)],
                 ["gate", "--baseline", str(out), "--current", str(out)]):
        assert cli(*argv) == 2
        assert "Traceback" not in capsys.readouterr().err


def test_a_legacy_record_still_reads_and_its_sample_lines_are_checked(toy_task, toy_root, tmp_path, capsys):
    """Schema 1 records (committed reports) carry no digests: their lines are checked field by field."""
    out = tmp_path / "o"
    run(cfg(toy_root, out, use_cache=False), model=ScriptedModel(fn=oracle(toy_root)), show_progress=False)
    doc = json.loads((out / records.RESULTS).read_text())
    doc["schema_version"] = 1
    doc.pop("files")
    (out / records.RESULTS).write_text(json.dumps(doc))
    assert cli("score", "--run", str(out)) == 0
    lines = [json.loads(x) for x in _lines(out)]
    del lines[3]["task"]
    (out / records.SAMPLES).write_text("".join(json.dumps(x) + "\n" for x in lines))
    capsys.readouterr()
    assert cli("score", "--run", str(out)) == 2
    err = capsys.readouterr().err
    assert "samples.jsonl" in err and "record at line 4" in err and "field 'task'" in err
    lines[3]["task"] = "toy"
    (out / records.SAMPLES).write_text("".join(json.dumps(x) + "\n" for x in lines[:-2]))
    assert cli("score", "--run", str(out)) == 2
    assert "holds 38 samples of task 'toy' where results.json" in capsys.readouterr().err


# --- exit codes a CI can trust ----------------------------------------------------------------------

def _flaky(root: Path, failing: set[int]):
    def fn(req):
        from molmo_eval.core.types import Generation

        sid = int(req.uid.rsplit("/", 1)[1])
        return Generation(text="", error="HTTP 503 after 3 retries") if sid in failing else oracle_text(req.uid, root)
    return fn


@pytest.mark.parametrize("limit,status,code", [(None, "partial", 1), ("2", "ok", 0), ("1", "failed", 1),
                                               ("5%", "ok", 0), ("2.5%", "failed", 1)])
def test_failed_samples_exit_non_zero_unless_accepted(toy_task, toy_root, tmp_path, capsys, limit, status, code):
    out = tmp_path / "o"
    c = cfg(toy_root, out, cache_dir=tmp_path / "c", **({} if limit is None else {"max_failures": limit}))
    res = run(c, model=ScriptedModel(fn=_flaky(toy_root, {3, 30})), show_progress=False)
    assert res.record.status == status and res.exit_code == code and res.record.n_failed == 2
    assert records.read_run(out).record.status == status


def test_cli_says_partial_and_a_rerun_fills_the_gaps_from_the_cache(toy_task, toy_root, tmp_path, capsys):
    failing = {3, 30}
    rows = [{"id": str(i), **({"error": "HTTP 503"} if i in failing else {"text": oracle_text(f"toy/a/{i}", toy_root)})}
            for i in range(40)]
    script = tmp_path / "s.jsonl"
    script.write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={script},fingerprint=flaky",
              "--data-root", str(toy_root), "--bootstrap", "0", "--cache-dir", str(tmp_path / "c"),
              "--output-path", str(tmp_path / "o")]
    assert cli(*common) == 1
    err = capsys.readouterr().err
    assert "2 sample(s) failed (status partial, exit 1)" in err
    assert cli(*common, "--max-failures", "2") == 0  # a known-flaky backend, accepted
    rows[3], rows[30] = ({"id": "3", "text": oracle_text("toy/a/3", toy_root)},
                         {"id": "30", "text": oracle_text("toy/a/30", toy_root)})
    script.write_text("".join(json.dumps(r) + "\n" for r in rows))  # the backend recovered
    assert cli(*common) == 0
    rec = records.read_run(tmp_path / "o").record
    assert rec.status == "ok" and rec.counts["model_calls"] == 2 and rec.counts["cache_hits"] == 38


@pytest.mark.parametrize("bad", ["-1", "x", "101%", "nan%", "1e999"])
def test_a_malformed_failure_limit_is_exit_2(toy_task, toy_root, tmp_path, bad, capsys):
    assert cli("--tasks", "toy", "--model", "scripted", "--model-args", "outputs=/nonexistent",
               "--data-root", str(toy_root), "--max-failures", bad) == 2
    assert "--max-failures" in capsys.readouterr().err


def test_a_gate_baseline_run_dir_is_still_loadable_after_a_rerun(toy_task, toy_root, tmp_path):
    out = tmp_path / "o"
    run(cfg(toy_root, out, use_cache=False), model=ScriptedModel(fn=oracle(toy_root)), show_progress=False)
    data = load(out)
    assert data.rows is not None and len(data.rows["toy"]) == 40


# --- what issue 15 added, under these rules ---------------------------------------------------------

def _predictions(root: Path, path: Path, wrong: int = 0) -> Path:
    path.write_text(json.dumps([{"id": i, "answer": "purple" if i < wrong else oracle_text(f"toy/a/{i}", root)}
                                for i in range(40)]))
    return path


def test_score_predictions_writes_its_folder_as_a_run_does(toy_task, toy_root, tmp_path, capsys):
    """score --predictions --output-path: checked before anything is read, written as a unit with the
    digests of its files, refused when it disagrees with them, and another evaluation needs --overwrite."""
    good, bad = _predictions(toy_root, tmp_path / "good.json"), _predictions(toy_root, tmp_path / "bad.json", 10)
    out = tmp_path / "scored"
    score = ["score", "--task", "toy", "--data-root", str(toy_root), "--split", "a", "--bootstrap", "0",
             "--output-path", str(out)]
    assert cli(*score, "--predictions", str(good)) == 0
    rec = records.read_run(out).record
    assert rec.status == "ok" and set(rec.files) == {records.SAMPLES, records.SCORES, records.REPORT}
    assert cli(*score, "--predictions", str(good)) == 0  # the same command again: the same run, replaced
    again = records.read_run(out).record.run_id
    assert again != rec.run_id
    # another prediction file is another evaluation: refused before the file is even read
    assert cli(*score, "--predictions", str(tmp_path / "missing.json")) == 2
    assert "holds another run" in capsys.readouterr().err and records.read_run(out).record.run_id == again
    assert cli(*score, "--predictions", str(bad), "--overwrite") == 0
    assert records.read_run(out).record.tasks["toy"].metrics["accuracy"].value == 0.75
    _flip_a_score(out, out)
    capsys.readouterr()
    assert cli("gate", "--baseline", str(out), "--current", str(out)) == 2
    assert records.SAMPLES in capsys.readouterr().out


def test_a_schema_2_record_from_before_the_lmms_eval_keys_still_reads(toy_task, toy_root, tmp_path):
    """Between issue 14 and issue 15, schema 2 kept library versions under "versions" and task versions
    under "versions_tasks", without configs or n-samples.original."""
    out = tmp_path / "o"
    run(cfg(toy_root, out, use_cache=False), model=ScriptedModel(fn=oracle(toy_root)), show_progress=False)
    doc = json.loads((out / records.RESULTS).read_text())
    doc["versions"], doc["versions_tasks"] = doc.pop("package_versions"), doc["versions"]
    for key in ("configs", "higher_is_better", "n-shot", "world_size"):
        doc.pop(key)
    doc["n-samples"] = {"toy": {"effective": 40}}
    (out / records.RESULTS).write_text(json.dumps(doc))
    rec = records.read_run(out).record
    assert rec.packages["molmo_eval"] and rec.task_configs == {} and rec.world_size == 1
    assert load(out).record.tasks["toy"].n == 40


@pytest.mark.parametrize("setting,needle", [({"gen_kwargs": 3}, "--gen-kwargs: expected"),
                                            ({"gen_kwargs": {"top_k": 5}}, "--gen-kwargs top_k"),
                                            ({"limit": True}, "--limit: expected"),
                                            ({"limit": "1e999"}, "--limit: expected"),
                                            ({"limit": 2.5}, "--limit: expected")])
def test_new_settings_are_checked_before_anything_runs(toy_task, toy_root, tmp_path, setting, needle):
    with pytest.raises(ConfigError, match=needle):
        cfg(toy_root, tmp_path / "o", **setting)

"""The command line: exit codes, one-line errors, listing, re-scoring, speed-sensitive imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from toy import oracle_text

from molmo_eval.cli import main

HERE = Path(__file__).parent


def toy_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / "toy_cli.py"), *args], capture_output=True, text=True,
                          timeout=120)


def write_outputs(root: Path, path: Path, n: int = 40, wrong_every: int = 5) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            text = "purple" if i % wrong_every == 0 else oracle_text(f"toy/a/{i}", root)
            f.write(json.dumps({"id": str(i), "text": text}) + "\n")
    return path


def test_run_exit_0_prints_table_and_writes_run(toy_root, tmp_path):
    outputs = write_outputs(toy_root, tmp_path / "o.jsonl")
    r = toy_cli("--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={outputs}",
                "--data-root", str(toy_root), "--output-path", str(tmp_path / "run"), "--cache-dir",
                str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    assert "accuracy" in r.stdout and "80.00" in r.stdout
    assert "[molmo-eval] toy: 40 samples" in r.stderr  # plain progress when not a TTY
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "ok"


def test_missing_scripted_outputs_fail_the_task_with_exit_1(toy_root, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = toy_cli("--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={empty}",
                "--data-root", str(toy_root), "--output-path", str(tmp_path / "run"), "--no-cache")
    assert r.returncode == 1
    assert "every sample failed (no scripted output for sample toy/a/0)" in r.stdout


@pytest.mark.parametrize("args,message", [
    (["--tasks", "tyo", "--model", "scripted", "--model-args", "outputs=x"], "did you mean 'toy'"),
    (["--tasks", "toy", "--model", "scriptd"], "unknown model 'scriptd'"),
    (["--tasks", "toy", "--model", "scripted", "--model-args", "outputs"], "--model-args: 'outputs' is not key=value"),
    (["--tasks", "toy", "--model", "scripted", "--model-args", "outputs=/nonexistent.jsonl"], "file not found"),
    (["--model", "scripted"], "--tasks: give the tasks"),
    (["--tasks", "toy", "--batch-size", "0", "--model", "scripted"], "--batch-size: expected a positive integer"),
])
def test_bad_configuration_exits_2_with_one_line_and_no_traceback(args, message, toy_root):
    r = toy_cli(*args, "--data-root", str(toy_root))
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1


def test_debug_shows_the_traceback(toy_root):
    r = toy_cli("--tasks", "tyo", "--model", "scripted", "--model-args", "outputs=x", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_bad_data_names_file_and_field(toy_root, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    (toy_root / "toy" / "questions_a.json").write_text('[{"id": "x", "image": "images/a_0.png", "answer": "red"}]')
    r = toy_cli("--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={empty}",
                "--data-root", str(toy_root), "--no-cache")
    assert r.returncode == 2
    assert "questions_a.json, record 0, field 'id': has type str (expected int)" in r.stderr


def test_image_path_escaping_the_data_root_is_refused(toy_root):
    (toy_root / "toy" / "questions_a.json").write_text('[{"id": 0, "image": "../../etc/passwd", "answer": "red"}]')
    r = toy_cli("--tasks", "toy", "--model", "scripted", "--model-args", "outputs=unused.jsonl",
                "--data-root", str(toy_root), "--no-cache")
    assert r.returncode == 2 and "escapes the data root" in r.stderr


def test_score_run_recomputes_with_another_variant(toy_root, tmp_path):
    outputs = tmp_path / "o.jsonl"
    with open(outputs, "w") as f:
        for i in range(40):
            f.write(json.dumps({"id": str(i), "text": "the answer is " + oracle_text(f"toy/a/{i}", toy_root)}) + "\n")
    run = tmp_path / "run"
    r = toy_cli("--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={outputs}",
                "--data-root", str(toy_root), "--output-path", str(run), "--no-cache", "--bootstrap", "0")
    assert r.returncode == 0
    assert json.loads((run / "results.json").read_text())["tasks"]["toy"]["metrics"]["accuracy"]["value"] == 0.0
    r = toy_cli("score", "--run", str(run), "--variant", "lenient", "--json", "--output-path", str(tmp_path / "re"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["tasks"]["toy"]["metrics"]["accuracy"]["value"] == 1.0 and out["tasks"]["toy"]["variant"] == "lenient"
    lines = [json.loads(x) for x in (tmp_path / "re" / "samples.jsonl").read_text().splitlines()]
    assert all(ln["scores"]["accuracy"] == 1.0 for ln in lines) and len(lines) == 40


def test_score_predictions_requires_coverage_unless_allowed(toy_root, tmp_path):
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([{"id": i, "answer": oracle_text(f"toy/a/{i}", toy_root)} for i in range(30)]))
    base = ["score", "--task", "toy", "--data-root", str(toy_root), "--split", "a", "--predictions", str(preds)]
    r = toy_cli(*base, "--json")
    assert r.returncode == 2 and "10 of 40 questions have no prediction (first: 30, 31, 32" in r.stderr
    r = toy_cli(*base, "--json", "--allow-missing")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["metrics"]["accuracy"] == 0.75 and out["n"] == 40 and out["missing"] == 10
    assert set(out["breakdowns"]["shade"]) == {"dark", "light"}


def test_score_predictions_output_path_writes_a_run_that_gate_and_report_read(toy_root, tmp_path):
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([{"id": i, "answer": oracle_text(f"toy/a/{i}", toy_root) if i % 4 else "purple"}
                                 for i in range(36)]))
    out = tmp_path / "scored"
    r = toy_cli("score", "--task", "toy", "--data-root", str(toy_root), "--split", "a", "--predictions", str(preds),
                "--allow-missing", "--json", "--output-path", str(out))
    assert r.returncode == 0, r.stderr
    printed = json.loads(r.stdout)["metrics"]["accuracy"]
    record = json.loads((out / "results.json").read_text())
    assert record["tasks"]["toy"]["metrics"]["accuracy"]["value"] == printed == 27 / 40
    assert record["model"]["name"] == "predictions" and record["config"]["predictions"] == str(preds)
    assert record["tasks"]["toy"]["n_failed"] == 4 and record["tasks"]["toy"]["data_digests"]
    lines = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 40 and [ln["error"] for ln in lines].count("no prediction") == 4
    assert lines[1]["output"]["text"] == oracle_text("toy/a/1", toy_root) and lines[1]["scores"]["accuracy"] == 1.0
    assert (out / "report.md").is_file() and (out / "scores.json").is_file()
    gate = toy_cli("gate", "--baseline", str(out), "--current", str(out), "--quiet", "--max-failed", "4")
    assert gate.returncode == 0, gate.stdout + gate.stderr
    report = toy_cli("report", str(out), "--out", str(tmp_path / "t.md"))
    assert report.returncode == 0 and "67.5" in (tmp_path / "t.md").read_text()


def test_score_takes_task_scoped_variant_and_data_root_as_run_does(toy_root, tmp_path):
    outputs = write_outputs(toy_root, tmp_path / "o.jsonl", wrong_every=1000)
    run = tmp_path / "run"
    assert toy_cli("--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={outputs}", "--data-root",
                   str(toy_root), "--output-path", str(run), "--no-cache").returncode == 0
    r = toy_cli("score", "--run", str(run), "--variant", "toy=lenient", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tasks"]["toy"]["variant"] == "lenient"
    bad = toy_cli("score", "--run", str(run), "--variant", "vqav2=lmms-eval")
    assert bad.returncode == 2 and "--variant vqav2=...: 'vqav2' is not a task of this scoring (toy)" in bad.stderr
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps([{"id": i, "answer": oracle_text(f"toy/a/{i}", toy_root)} for i in range(40)]))
    common = ["score", "--task", "toy", "--split", "a", "--predictions", str(preds), "--json"]
    for root in (f"toy={toy_root / 'toy'}", str(toy_root)):  # the task's folder, or the root holding it
        r = toy_cli(*common, "--data-root", root, "--variant", "toy=lenient")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["metrics"]["accuracy"] == 1.0 and json.loads(r.stdout)["variant"] == "lenient"
    missing = toy_cli(*common, "--data-root", f"toy={tmp_path / 'nowhere'}")
    assert missing.returncode == 2 and "is not a directory (the folder of task 'toy')" in missing.stderr


def test_listing_commands_and_help_do_not_import_torch():
    code = ("import sys; from molmo_eval.cli import main; "
            "rc = [main(a) for a in (['tasks'], ['models'])]; "
            "print('torch' in sys.modules, rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False [0, 0]"
    assert "scripted" in r.stdout


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--tasks" in out and "--model-args" in out and "score" in out


# --- lmms-eval habits: --gen_kwargs, --verbosity, --tasks list ----------------------------------------


def test_gen_kwargs_reach_the_model_are_recorded_and_key_the_cache(toy_task, toy_root, tmp_path):
    import argparse
    from dataclasses import replace

    from molmo_eval import evaluate
    from molmo_eval.commands.run import add_run_arguments, config_from_args
    from molmo_eval.models.scripted import ScriptedModel
    from molmo_eval.run.runner import run

    seen = []

    def fn(req):  # noqa: ANN001 - scripted callable
        seen.append(req.settings)
        return "red"

    common = dict(data_root=toy_root, limit=3, bootstrap=0, cache_dir=tmp_path / "cache")
    evaluate("toy", ScriptedModel(fn=fn, fingerprint="g"), output_path=tmp_path / "first", **common)
    assert {(s.max_new_tokens, s.temperature, s.stop) for s in seen} == {(64, 0.0, ())}  # the task's own
    seen.clear()
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--tasks", "toy", "--gen_kwargs", "max_new_tokens=7,temperature=0.5,until=."])
    cfg = config_from_args(args)
    assert dict(cfg.gen_kwargs) == {"max_new_tokens": 7, "temperature": 0.5, "until": "."}
    out = run(replace(cfg, **common, output_path=tmp_path / "r"), model=ScriptedModel(fn=fn, fingerprint="g"),
              show_progress=False)
    assert {(s.max_new_tokens, s.temperature, s.stop) for s in seen} == {(7, 0.5, (".",))}
    assert out.model_calls == 3  # new settings: not answered from the cache of the first run
    assert out.record.config["gen_kwargs"] == {"max_new_tokens": 7, "temperature": 0.5, "until": "."}
    greedy = evaluate("toy", ScriptedModel(fn=fn, fingerprint="g"), gen_kwargs={"temperature": 0.9,
                      "do_sample": "false"}, output_path=tmp_path / "greedy", **common)
    assert greedy.counts["model_calls"] == 0  # do_sample=false: greedy, the first run's settings (cached)


@pytest.mark.parametrize("spec,message", [
    ("top_p=0.9", "--gen-kwargs top_p=...: not a generation setting"),
    ("max_new_tokens=0", "--gen-kwargs max_new_tokens='0': expected an integer >= 1"),
    ("max_new_tokens=1.5", "expected an integer"),
    ("temperature=hot", "expected a number"),
    ("do_sample=maybe", "expected true or false"),
])
def test_bad_gen_kwargs_exit_2(spec, message, toy_root):
    r = toy_cli("--tasks", "toy", "--gen_kwargs", spec, "--data-root", str(toy_root))
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_verbosity_warning_silences_progress_and_tasks_list_lists(toy_root, tmp_path):
    outputs = write_outputs(toy_root, tmp_path / "o.jsonl")
    common = ["--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={outputs}", "--data-root",
              str(toy_root), "--no-cache", "--no-log-samples"]
    loud = toy_cli(*common, "--output-path", str(tmp_path / "a"))
    quiet = toy_cli(*common, "--output-path", str(tmp_path / "b"), "--verbosity", "warning")
    assert loud.returncode == quiet.returncode == 0
    assert "[molmo-eval] toy: 40 samples" in loud.stderr and "[molmo-eval] toy" not in quiet.stderr
    assert "80.00" in quiet.stdout
    listed = toy_cli("--tasks", "list")
    assert listed.returncode == 0 and listed.stdout == toy_cli("tasks").stdout and "toy" in listed.stdout
    bad = toy_cli(*common, "--verbosity", "LOUD")
    assert bad.returncode == 2 and "--verbosity" in bad.stderr


# --- a missing dependency is one line naming its pip install, never a traceback -----------------------

BLOCKED = [  # (modules made unimportable, command, the pip install the message must name)
    (["matplotlib"], ["data", "show", "--task", "toy", "--n", "1", "--out", "{tmp}/sheet.png"], "matplotlib"),
    (["matplotlib"], ["report", "{run}", "--out", "{tmp}/r.md", "--plots", "{tmp}/plots"], "matplotlib"),
    (["httpx"], ["--tasks", "toy", "--model", "openai", "--model-args", "base_url=http://127.0.0.1:9/v1,model=m"],
     "molmo-eval[openai]"),
    (["transformers"], ["--tasks", "toy", "--model", "hf-molmo", "--model-args", "pretrained={tmp}"], "molmo-eval[hf]"),
    (["openpyxl"], ["score", "--task", "mmbench", "--predictions", "{tmp}/p.xlsx"], "molmo-eval[xlsx]"),
    (["torch", "torch.distributed"], ["--tasks", "toy"], "molmo-eval[model]"),
    (["rich", "rich.console"], ["--tasks", "toy", "--model", "scripted", "--model-args", "default=red"], "rich"),
]


@pytest.mark.parametrize(("blocked", "argv", "install"), BLOCKED, ids=[" ".join(b[0][:1] + b[1][:1]) for b in BLOCKED])
def test_a_missing_dependency_is_one_line_naming_the_pip_install(blocked, argv, install, toy_root, tmp_path):
    outputs = write_outputs(toy_root, tmp_path / "o.jsonl")
    run = tmp_path / "run"
    assert toy_cli("--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={outputs}", "--data-root",
                   str(toy_root), "--output-path", str(run), "--no-cache").returncode == 0
    (tmp_path / "p.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    (tmp_path / "config.json").write_text('{"model_type": "molmo2"}')  # a Molmo2 folder, for hf-molmo
    args = [a.format(tmp=tmp_path, run=run) for a in argv]
    if args[0].startswith("--") or args[0] == "data":
        args += ["--data-root", str(toy_root)]
    script = HERE / "toy_cli.py"
    code = (f"import runpy, sys; sys.modules.update(dict.fromkeys({blocked!r})); sys.argv[1:] = {args!r}; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("molmo-eval: error:")]
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and len(err) == 1, r.stderr[-2000:]
    assert f"pip install '{install}'" in err[0] and repr(blocked[0]) in err[0]


def test_the_console_says_when_results_came_from_the_cache(toy_root, tmp_path):
    outputs = write_outputs(toy_root, tmp_path / "o.jsonl")
    args = ["--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={outputs}", "--data-root",
            str(toy_root), "--cache-dir", str(tmp_path / "c"), "--no-log-samples"]
    first = toy_cli(*args, "--output-path", str(tmp_path / "a"), "--limit", "30")
    second = toy_cli(*args, "--output-path", str(tmp_path / "b"))
    off = toy_cli(*args, "--output-path", str(tmp_path / "c2"), "--no-cache", "--limit", "5")
    assert "30 samples, 0 from cache, 30 model calls" in first.stdout
    assert "40 samples, 30 from cache, 10 model calls" in second.stdout
    assert "5 samples, 0 from cache (cache off), 5 model calls" in off.stdout


def test_run_files_are_readable_as_open_would_create_them(toy_root, tmp_path):
    import os
    import stat

    outputs = write_outputs(toy_root, tmp_path / "o.jsonl")
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        run = tmp_path / f"run{umask:o}"
        argv = ["--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={outputs}", "--data-root",
                str(toy_root), "--output-path", str(run), "--no-cache"]
        code = (f"import os, runpy, sys; os.umask({umask}); sys.argv[1:] = {argv!r}; "
                f"runpy.run_path({str(HERE / 'toy_cli.py')!r}, run_name='__main__')")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        files = sorted(p.name for p in run.iterdir())
        assert files == ["report.md", "results.json", "samples.jsonl", "scores.json"]
        assert {p.name: oct(stat.S_IMODE(os.stat(p).st_mode)) for p in run.iterdir()} == dict.fromkeys(files, oct(mode))

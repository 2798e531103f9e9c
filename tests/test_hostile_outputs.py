"""A model's output is untrusted input (issue 14, part 1): whatever a model or an OpenAI-compatible
server writes, parsing and scoring it never crashes a run, a cached output never crashes a rerun,
non-finite or absurd coordinates are unparseable, long numerals are never converted, and any text is
stored losslessly in the cache and in samples.jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from toy import oracle_text

from molmo_eval import evaluate
from molmo_eval.cli import main
from molmo_eval.core import registry
from molmo_eval.core.config import build
from molmo_eval.core.errors import ConfigError
from molmo_eval.core.jsonio import dumps
from molmo_eval.core.types import AnswerKind, CoordSpace, Generation
from molmo_eval.data.embedded import default_data_root
from molmo_eval.models.scripted import ScriptedModel
from molmo_eval.run import records
from molmo_eval.run.guard import score_sample
from molmo_eval.run.loading import load_split
from molmo_eval.run.runner import run
from molmo_eval.run.scoring import sample_line

DIGITS = "7" * 5000
HOSTILE = {
    "infinite point": "(1e999, 1e999)",
    "infinite xml point": '<point x="1e999" y="5" alt="a">a</point>',
    "nan points": '<points x1="nan" y1="3" x2="4" y2="5" alt="a">a</points>',
    "huge count": f"There are {DIGITS} dogs.",
    "huge point index": f'<points x{"1" * 5000}="1" y1="2" alt="a">a</points>',
    "huge bin": f"<point> <x_{DIGITS}> <y_1>",
    "huge pair": f"({DIGITS}, 2)",
    "overflowing box": "[1e308, 1e308, -1e308, 1e308]",
    "absurd box": "[0, 0, 1e7, 1e7]",
    "lone surrogate": "yes\ud800",
    "control characters": "\x00\x01\x1b[31m",
    "many open tags": "<point" * 5000,
    "nested brackets": "[" * 10000,
    "long text": "A 1 (2, " * 20_000,
}
NATIVE = {  # structured points and boxes a backend returned
    "native inf point": Generation(text="", points=((math.inf, 1.0),)),
    "native nan box": Generation(text="", box=(math.nan, 0.0, 1.0, 1.0)),
    "native absurd point": Generation(text="", points=((1e300, 1e300),)),
}
COORDS = {"infinite point", "infinite xml point", "nan points", "huge point index", "huge bin", "huge pair",
          "native inf point", "native absurd point"}
TASKS = ("refcoco", "pointqa", "pope", "vqav2", "gqa", "textvqa", "mmbench")


@pytest.fixture(scope="module")
def loaded():
    """A few samples of every split of every built-in task, from the embedded mini world."""
    root = default_data_root()
    out = {}
    for name in TASKS:
        task = registry.get_task(name)
        out[name] = (task, [s for split in task.splits if (task.data_dir and _has(task, root, split))
                            for s in load_split(task, root / task.data_dir, split)[0][:1]])
    return out


def _has(task, root: Path, split: str) -> bool:
    return all(f.is_file() for f in task.data_files(root / task.data_dir, split))


@pytest.mark.parametrize("case", [*HOSTILE, *NATIVE])
def test_hostile_outputs_parse_and_score_in_every_task(loaded, case):
    gen = NATIVE.get(case) or Generation(text=HOSTILE.get(case, ""))
    for name, (task, samples) in loaded.items():
        assert samples, name
        for sample in samples:
            for space in (CoordSpace.PERCENT, CoordSpace.BINS):
                scored = score_sample(task, sample, gen, space, sample.image_size or (64, 48))
                assert scored.error is None, (name, case, scored.error)  # parsers handle it: no exception
                assert all(isinstance(v, float) for v in scored.score.values.values())
                if case in COORDS and task.answer_kind is AnswerKind.POINTS and sample.split != "local" \
                        and sample.split != "looktwice":
                    assert not scored.answer.parse_ok, (name, case, scored.answer)
                line = sample_line(sample, "p", gen, scored.answer, scored.score, error=None, cached=False)
                dumps(line).encode("utf-8")  # storable, whatever the output held


def test_a_parser_that_raises_fails_only_its_sample(toy_task, toy_root, tmp_path, monkeypatch):
    from toy import ToyTask

    def parse(self, sample, generation, ctx):
        if generation.text == "explode":
            raise ValueError("cost matrix is infeasible")
        return original(self, sample, generation, ctx)

    original = ToyTask.parse
    monkeypatch.setattr(ToyTask, "parse", parse)
    model = ScriptedModel(fn=lambda r: "explode" if r.uid.endswith("/3") else oracle_text(r.uid, toy_root))
    out = run(build("toy", model="x", data_root=toy_root, bootstrap=0, cache_dir=tmp_path / "c",
                    output_path=tmp_path / "o"), model=model, show_progress=False)
    tr = out.record.tasks["toy"]
    assert tr.n == 40 and tr.n_failed == 1 and tr.metrics["accuracy"].value == pytest.approx(39 / 40)
    bad = [ln for ln in records.iter_samples(tmp_path / "o") if ln["error"]]
    assert [ln["uid"] for ln in bad] == ["toy/a/3"]
    assert bad[0]["error"].startswith("scoring: ValueError: cost matrix is infeasible")
    assert bad[0]["output"]["text"] == "explode"  # the output is kept, persisted before it was scored
    assert out.record.status == "partial" and out.exit_code == 1
    # the cached output is parsed again on the rerun: same verdict, no model call, no crash
    again = ScriptedModel(fn=lambda r: "never asked")
    out2 = run(build("toy", model="x", data_root=toy_root, bootstrap=0, cache_dir=tmp_path / "c",
                     output_path=tmp_path / "o"), model=again, show_progress=False)
    assert again.calls == 0 and out2.record.tasks["toy"].n_failed == 1
    # once the parser is fixed, re-scoring the saved output clears the failure (no model needed)
    monkeypatch.setattr(ToyTask, "parse", original)
    assert main(["score", "--run", str(tmp_path / "o"), "--output-path", str(tmp_path / "fixed"),
                 "--bootstrap", "0"]) == 0
    fixed = records.read_run(tmp_path / "fixed").record
    assert fixed.status == "ok" and fixed.n_failed == 0 and fixed.tasks["toy"].n_unparseable == 0
    assert not any(ln["error"] for ln in records.iter_samples(tmp_path / "fixed"))


def test_malformed_structured_answers_fail_their_sample_and_nothing_else(toy_task, toy_root, tmp_path):
    from decimal import Decimal

    def fn(r):
        sid = int(r.uid.rsplit("/", 1)[1])
        if sid == 1:
            return Generation(text="red", points=((Decimal(1), Decimal(2)),))  # not JSON: made plain floats
        if sid == 2:
            return Generation(text="red", points=((1.0, 2.0, 3.0),))  # three numbers: not a point
        if sid == 3:
            return Generation(text="red", box=(1.0,))
        if sid == 4:
            return Generation(text="red", error=RuntimeError("not a string"))  # type: ignore[arg-type]
        return oracle_text(r.uid, toy_root)

    rec = evaluate("toy", ScriptedModel(fn=fn, fingerprint="structured"), data_root=toy_root, bootstrap=0,
                   cache_dir=tmp_path / "c", output_path=tmp_path / "o")
    errors = {ln["id"]: ln["error"] for ln in records.iter_samples(tmp_path / "o") if ln["error"]}
    assert set(errors) == {"2", "3", "4"} and "point of 3 numbers" in errors["2"]
    assert errors["4"] == "not a string" and rec.tasks["toy"].n == 40
    again = ScriptedModel(fn=lambda r: "unused", fingerprint="structured")
    evaluate("toy", again, data_root=toy_root, bootstrap=0, cache_dir=tmp_path / "c", output_path=tmp_path / "o")
    assert again.calls == 3  # only the failed samples are asked again; sample 1 came from the cache


@pytest.mark.parametrize("use_cache", [True, False])
def test_lone_surrogates_are_stored_losslessly(toy_task, toy_root, tmp_path, use_cache):
    text = "red\ud800 and \udfff"
    model = ScriptedModel(fn=lambda r: text)
    out = tmp_path / "o"
    rec = evaluate("toy", model, data_root=toy_root, bootstrap=0, use_cache=use_cache,
                   cache_dir=tmp_path / "c", output_path=out)
    assert rec.status == "ok" and rec.tasks["toy"].n == 40
    raw = (out / "samples.jsonl").read_bytes()
    raw.decode("utf-8")  # valid UTF-8 on disk
    assert all(ln["output"]["text"] == text for ln in records.iter_samples(out))
    if use_cache:  # the rerun reads the same text back from the cache
        again = ScriptedModel(fn=lambda r: "unused")
        evaluate("toy", again, data_root=toy_root, bootstrap=0, cache_dir=tmp_path / "c", output_path=out)
        assert again.calls == 0
        assert all(ln["output"]["text"] == text and ln["cached"] for ln in records.iter_samples(out))


def test_the_scripted_model_file_and_an_http_body_may_hold_a_lone_surrogate(toy_task, toy_root, tmp_path):
    script = tmp_path / "out.jsonl"
    script.write_text("\n".join(json.dumps({"id": str(i), "text": "yes\ud800"}) for i in range(40)) + "\n")
    code = main(["--tasks", "toy", "--model", "scripted", "--model-args", f"outputs={script}", "--data-root",
                 str(toy_root), "--cache-dir", str(tmp_path / "c"), "--output-path", str(tmp_path / "o"),
                 "--bootstrap", "0"])
    assert code == 0
    assert next(records.iter_samples(tmp_path / "o"))["output"]["text"] == "yes\ud800"


def test_hostile_coordinates_in_a_real_run_are_unparseable_not_fatal(tmp_path):
    outputs = ["(1e999, 1e999)", f"There are {DIGITS}", "<point> <x_45> <y_67>"]
    model = ScriptedModel(fn=lambda r: outputs[sum(map(ord, r.uid)) % 3],
                          coord_space="bins", fingerprint="hostile-coords")
    rec = evaluate(["refcoco", "pointqa"], model, limit=6, bootstrap=0, cache_dir=tmp_path / "c",
                   output_path=tmp_path / "o", splits={"refcoco": ("val",), "pointqa": ("pointing",)})
    assert rec.status == "ok" and rec.n_failed == 0
    assert rec.tasks["refcoco"].n_unparseable + rec.tasks["pointqa"].n_unparseable > 0
    lines = list(records.iter_samples(tmp_path / "o"))
    hostile = [ln for ln in lines if ln["output"]["text"] == "(1e999, 1e999)"]
    assert hostile and all(not ln["answer"]["parse_ok"] for ln in hostile)


def test_prediction_files_with_huge_numbers_score_without_a_crash(tmp_path, capsys):
    root = default_data_root()
    task = registry.get_task("pointqa")
    samples, _ = load_split(task, root / "pointqa", "pointing")
    preds = tmp_path / "p.jsonl"
    lines = [{"id": s.id, "text": f"There are {DIGITS}"} for s in samples[:3]]
    lines += [{"id": s.id, "points": [[1e308, 1e308]]} for s in samples[3:6]]
    preds.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    code = main(["score", "--task", "pointqa", "--split", "pointing", "--predictions", str(preds),
                 "--allow-missing", "--json", "--bootstrap", "0"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == len(samples)
    # a numeral beyond Python's digit limit inside the JSON itself is a data error, not a traceback
    preds.write_text('{"id": "x", "points": [[' + DIGITS + ', 1]]}\n')
    assert main(["score", "--task", "pointqa", "--split", "pointing", "--predictions", str(preds),
                 "--allow-missing"]) == 2
    assert "not readable JSON" in capsys.readouterr().err


@pytest.mark.parametrize("what", ["output", "cache"])
def test_paths_that_are_files_are_refused_before_any_model_call(toy_task, toy_root, tmp_path, what):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    model = ScriptedModel(fn=lambda r: "red")
    kw = {"output_path": blocker, "cache_dir": tmp_path / "c"} if what == "output" else \
        {"output_path": tmp_path / "o", "cache_dir": blocker}
    with pytest.raises(ConfigError, match="is a file"):
        evaluate("toy", model, data_root=toy_root, bootstrap=0, **kw)
    assert model.calls == 0
    kw = {"output_path": blocker / "sub", "cache_dir": tmp_path / "c"} if what == "output" else \
        {"output_path": tmp_path / "o", "cache_dir": blocker / "sub"}
    with pytest.raises(ConfigError):
        evaluate("toy", model, data_root=toy_root, bootstrap=0, **kw)
    assert model.calls == 0

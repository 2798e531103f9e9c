"""The runner end to end on the toy task: results, records, cache, failures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from toy import ConfigFailingModel, ExplodingModel, oracle_text

from molmo_eval import evaluate
from molmo_eval.core.config import build
from molmo_eval.core.errors import ConfigError, DataError, MolmoEvalError, UnknownName
from molmo_eval.models.scripted import ScriptedModel
from molmo_eval.run import records
from molmo_eval.run.runner import run


def oracle(root: Path, wrong_every: int = 0):
    def fn(req):
        _, _, sid = req.uid.split("/")
        if wrong_every and int(sid) % wrong_every == 0:
            return "purple"
        return oracle_text(req.uid, root)

    return fn


def test_evaluate_scores_and_writes_run(toy_task, toy_root, tmp_path):
    model = ScriptedModel(fn=oracle(toy_root, wrong_every=4))
    out = tmp_path / "run"
    rec = evaluate("toy", model, data_root=toy_root, output_path=out, cache_dir=tmp_path / "c", bootstrap=200)
    tr = rec.tasks["toy"]
    assert tr.n == 40 and rec.status == "ok"
    assert tr.metrics["accuracy"].value == pytest.approx(30 / 40)  # ids 0,4,...,36 wrong
    lo, hi = tr.metrics["accuracy"].ci_low, tr.metrics["accuracy"].ci_high
    assert lo < 0.75 < hi
    assert set(tr.breakdowns["shade"]) == {"light", "dark"}
    assert rec.results_block()["toy"]["accuracy,none"] == pytest.approx(0.75)
    # files
    back = records.read_record(out)
    assert back.tasks["toy"].metrics["accuracy"].value == tr.metrics["accuracy"].value
    lines = list(records.iter_samples(out))
    assert [ln["uid"] for ln in lines] == [f"toy/a/{i}" for i in range(40)]
    assert lines[4]["scores"] == {"accuracy": 0.0} and lines[5]["scores"] == {"accuracy": 1.0}
    assert lines[0]["output"]["text"] == "purple" and lines[0]["image_size"] == [8, 8]
    assert (out / "report.md").read_text().count("| toy | accuracy | 75.00") == 1
    assert back.tasks["toy"].data_digests.keys() == {"questions_a.json"}


def test_rerun_makes_zero_model_calls_and_same_results(toy_task, toy_root, tmp_path):
    cfg = build("toy", model="scripted", data_root=toy_root, output_path=tmp_path / "r1",
                cache_dir=tmp_path / "cache", bootstrap=100, batch_size=3, splits={"*": ("a", "b")})
    m1 = ScriptedModel(fn=oracle(toy_root, 3))
    first = run(cfg, model=m1, show_progress=False)
    assert m1.calls == 80 and first.record.counts["model_calls"] == 80
    m2 = ScriptedModel(fn=oracle(toy_root, 3))
    second = run(cfg, model=m2, show_progress=False)
    assert m2.calls == 0 and second.record.counts == {"samples": 80, "model_calls": 0, "cache_hits": 80}
    assert second.record.tasks["toy"].metrics == first.record.tasks["toy"].metrics
    assert [ln["scores"] for ln in second.lines] == [ln["scores"] for ln in first.lines]
    assert set(first.record.tasks["toy"].breakdowns) == {"split", "shade"}


def test_changing_the_variant_reuses_cached_outputs(toy_task, toy_root, tmp_path):
    model = ScriptedModel(fn=lambda r: "it is " + oracle_text(r.uid, toy_root), fingerprint="verbose")
    common = dict(data_root=toy_root, cache_dir=tmp_path / "cache", bootstrap=0, output_path=tmp_path / "o")
    strict = evaluate("toy", model, **common)
    assert strict.tasks["toy"].metrics["accuracy"].value == 0.0
    calls = model.calls
    lenient = evaluate("toy", model, variants={"toy": "lenient"}, **{**common, "output_path": tmp_path / "o2"})
    assert model.calls == calls  # a metric change never invalidates cached outputs
    assert lenient.tasks["toy"].metrics["accuracy"].value == 1.0
    assert lenient.tasks["toy"].variant == "lenient"
    assert strict.tasks["toy"].metrics["accuracy"].ci_low is None  # bootstrap=0 -> no CI


def test_a_failing_sample_is_isolated_recorded_and_counted(toy_task, toy_root, tmp_path):
    answers = {f"toy/a/{i}": oracle_text(f"toy/a/{i}", toy_root) for i in range(40)}
    model = ExplodingModel(bad={"toy/a/5"}, answers=answers)
    out = run(build("toy", model="x", data_root=toy_root, bootstrap=0, batch_size=8, use_cache=False,
                    output_path=tmp_path / "o"), model=model, show_progress=False)
    tr = out.record.tasks["toy"]
    assert tr.n_failed == 1 and out.record.n_failed == 1
    assert tr.metrics["accuracy"].value == pytest.approx(39 / 40)
    bad = [ln for ln in out.lines if ln["error"]]
    assert [ln["uid"] for ln in bad] == ["toy/a/5"] and "boom" in bad[0]["error"]
    # the task scored, but a failed sample is not a clean run: status partial, exit 1
    assert out.record.status == "partial" and out.exit_code == 1


def test_max_failures_stops_the_run_with_exit_code_1(toy_task, toy_root, tmp_path):
    bad = {f"toy/a/{i}" for i in range(0, 40, 2)}
    model = ExplodingModel(bad=bad, answers={})
    out = run(build("toy", model="x", data_root=toy_root, bootstrap=0, batch_size=4, use_cache=False,
                    max_failures=3, output_path=tmp_path / "o"), model=model, show_progress=False)
    assert out.exit_code == 1 and out.record.status == "failed"
    assert out.record.n_failed == 4 and len(out.lines) == 8  # stopped after the batch that exceeded 3
    assert "max-failures" in out.record.errors[0]
    assert records.read_record(tmp_path / "o").status == "failed"


def test_unreadable_image_is_a_sample_failure(toy_task, toy_root, tmp_path):
    (toy_root / "toy" / "images" / "a_3.png").write_bytes(b"not a png")
    model = ScriptedModel(fn=oracle(toy_root))
    rec = evaluate("toy", model, data_root=toy_root, bootstrap=0, use_cache=False, output_path=tmp_path / "o")
    assert rec.tasks["toy"].n_failed == 1
    line = next(ln for ln in records.iter_samples(tmp_path / "o") if ln["uid"] == "toy/a/3")
    assert "unreadable image" in line["error"] and line["scores"]["accuracy"] == 0.0


def test_model_configuration_errors_propagate(toy_task, toy_root, tmp_path):
    with pytest.raises(MolmoEvalError, match="misconfigured"):
        run(build("toy", model="x", data_root=toy_root, use_cache=False, output_path=tmp_path / "o"),
            model=ConfigFailingModel(set(), {}), show_progress=False)


def test_bad_input_fails_before_any_model_call(toy_task, toy_root, tmp_path):
    (toy_root / "toy" / "questions_a.json").write_text('[{"id": 1, "answer": "red"}]')
    model = ScriptedModel(fn=oracle(toy_root))
    with pytest.raises(DataError) as e:
        evaluate("toy", model, data_root=toy_root, use_cache=False, output_path=tmp_path / "o")
    assert "questions_a.json" in str(e.value) and "'image'" in str(e.value) and "record 0" in str(e.value)
    assert model.calls == 0


def test_unknown_task_split_and_variant(toy_task, toy_root):
    model = ScriptedModel(fn=lambda r: "")
    with pytest.raises(ConfigError, match="did you mean 'toy'"):
        evaluate("tyo", model, data_root=toy_root)
    with pytest.raises(UnknownName, match="split of task 'toy'"):
        evaluate("toy", model, data_root=toy_root, splits={"toy": ("c",)})
    with pytest.raises(ConfigError, match="variant of task 'toy'"):
        evaluate("toy", model, data_root=toy_root, variants={"*": "strictest"})


def test_config_reports_every_problem_at_once(tmp_path):
    with pytest.raises(ConfigError) as e:
        build("a,a", batch_size=0, limit=-1, data_root=tmp_path / "missing")
    assert len(e.value.problems) == 4


@pytest.mark.parametrize(("given", "parsed"), [
    (5, 5), ("5", 5), ("5.0", 5), (10.0, 10), (0, 0), ("0.1", 0.1), (0.25, 0.25),
    ("1.5", None), (-1, None), ("x", None), ("nan", None), (True, None), ("-0.5", None),
])
def test_limit_is_a_count_or_a_fraction_as_in_lmms_eval(given, parsed):
    from molmo_eval.core.config import parse_limit

    if parsed is None:
        with pytest.raises(ValueError, match="count N >= 0 or a fraction"):
            parse_limit(given)
    else:
        got = parse_limit(given)
        assert got == parsed and type(got) is type(parsed)


def test_fractional_limit_rounds_up_per_split(toy_task, toy_root, tmp_path, capsys):
    from molmo_eval.cli import main

    model = ScriptedModel(fn=lambda r: "")
    for limit, n in ((0.1, 4), (0.11, 5), (0.001, 1)):  # 40 samples per split
        rec = evaluate("toy", model, data_root=toy_root, limit=limit, bootstrap=0, use_cache=False,
                       splits={"toy": ("a", "b")}, output_path=tmp_path / f"limit-{limit}")
        assert rec.tasks["toy"].n == 2 * n, limit
    script = tmp_path / "answers.jsonl"
    script.write_text("".join(json.dumps({"id": i, "text": "red"}) + "\n" for i in range(40)))
    assert main(["--tasks", "toy", "--limit", "0.1", "--no-cache", "--json", "--data-root", str(toy_root),
                 "--model", "scripted", "--model-args", f"outputs={script}", "--output-path",
                 str(tmp_path / "run")]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["tasks"]["toy"]["n"] == 4 and record["config"]["limit"] == 0.1
    assert main(["--tasks", "toy", "--limit", "1.5", "--data-root", str(toy_root)]) == 2
    assert "--limit: expected a count N >= 0 or a fraction 0 < F < 1" in capsys.readouterr().err


def test_limit_and_nan_free_json(toy_task, toy_root, tmp_path):
    model = ScriptedModel(fn=lambda r: "")
    rec = evaluate("toy", model, data_root=toy_root, limit=5, bootstrap=50, use_cache=False,
                   output_path=tmp_path / "o")
    tr = rec.tasks["toy"]
    assert tr.n == 5 and tr.n_unparseable == 5 and tr.metrics["accuracy"].value == 0.0
    text = (tmp_path / "o" / "results.json").read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["schema_version"] == 2 and data["n-samples"]["toy"] == {"original": 40, "effective": 5}
    assert not math.isnan(data["tasks"]["toy"]["metrics"]["accuracy"]["value"])


def test_shards_keep_the_questions_about_one_image_together():
    from molmo_eval.core.types import ImageRef, Sample
    from molmo_eval.run.runner import shard_indices

    # images with 1..5 questions each, interleaved as a benchmark might list them
    images = [f"/data/{k}.png" for k in range(9)]
    order = [k for rep in range(5) for k in range(9) if rep <= k % 5]
    samples = [Sample(id=str(i), task="t", split="s", image=ImageRef(path=images[k]), prompt_fields={}, target={})
               for i, k in enumerate(order)]
    samples.append(Sample(id="none", task="t", split="s", image=None, prompt_fields={}, target={}))
    shares = [shard_indices(samples, r, 3) for r in range(3)]
    assert sorted(i for s in shares for i in s) == list(range(len(samples)))  # each sample exactly once
    for share in shares:
        assert share == sorted(share)
    owner = {samples[i].image.path: r for r, share in enumerate(shares) for i in share if samples[i].image}
    for r, share in enumerate(shares):  # every question of an image on its image's rank
        assert all(owner[samples[i].image.path] == r for i in share if samples[i].image)
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 5  # balanced to within the largest image's questions


def test_recently_loaded_images_are_reused_until_the_file_changes(tmp_path):
    import os

    import numpy as np
    from PIL import Image as PILImage

    from molmo_eval.core.types import ImageRef
    from molmo_eval.data.images import load_image

    path = tmp_path / "a.png"
    PILImage.new("RGB", (8, 6), (200, 10, 10)).save(path)
    first = load_image(ImageRef(path=str(path)), True)
    assert load_image(ImageRef(path=str(path)), True) is first
    assert not first.pixels.flags.writeable  # shared, so nobody may change it in place
    with pytest.raises(ValueError):
        first.pixels[0, 0, 0] = 1
    PILImage.new("RGB", (8, 6), (10, 200, 10)).save(path)
    os.utime(path, ns=(first_ns := os.stat(path).st_mtime_ns + 10**9, first_ns))
    again = load_image(ImageRef(path=str(path)), True)
    assert again is not first and again.digest != first.digest
    assert np.array_equal(again.pixels[0, 0], [10, 200, 10])


def test_scripted_default_answers_samples_without_a_line(toy_task, toy_root, tmp_path):
    const = evaluate("toy", ScriptedModel(default="red"), data_root=toy_root, bootstrap=0, use_cache=False,
                     output_path=tmp_path / "const")
    assert const.tasks["toy"].metrics["accuracy"].value == pytest.approx(10 / 40)  # colours cycle over 4
    script = tmp_path / "some.jsonl"
    script.write_text("".join(json.dumps({"id": i, "text": oracle_text(f"toy/a/{i}", toy_root)}) + "\n"
                              for i in range(20)))
    mixed = evaluate("toy", ScriptedModel(outputs=str(script), default="red"), data_root=toy_root, bootstrap=0,
                     use_cache=False, output_path=tmp_path / "mixed")
    assert mixed.tasks["toy"].metrics["accuracy"].value == pytest.approx((20 + 5) / 40)
    assert mixed.tasks["toy"].n_failed == 0
    assert ScriptedModel(default="red").fingerprint != ScriptedModel(default="blue").fingerprint
    with pytest.raises(ConfigError, match="needs outputs=FILE.jsonl and/or default=TEXT"):
        ScriptedModel()


def test_results_json_has_the_keys_lmms_eval_readers_use(toy_task, toy_root, tmp_path):
    """versions (task versions, as lmms-eval has them; library versions under package_versions),
    higher_is_better, configs, n-shot, n-samples {original, effective}, world_size; and lmms-eval's own
    table reads the file."""
    evaluate("toy", ScriptedModel(default="red"), data_root=toy_root, limit=0.25, bootstrap=0, use_cache=False,
             output_path=tmp_path / "o", gen_kwargs={"max_new_tokens": 9}, splits={"toy": ("a", "b")})
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert data["versions"] == {"toy": toy_task.version}
    assert data["package_versions"]["molmo_eval"] and "python" in data["package_versions"]
    assert data["higher_is_better"] == {"toy": {"accuracy": True}}
    assert data["n-samples"] == {"toy": {"original": 80, "effective": 20}} and data["n-shot"] == {"toy": 0}
    assert data["world_size"] == 1
    cfg = data["configs"]["toy"]
    assert (cfg["task"], cfg["variant"], cfg["splits"], cfg["limit"]) == ("toy", "official", ["a", "b"], 0.25)
    assert cfg["generation_kwargs"] == {"max_new_tokens": 9, "temperature": 0.0, "do_sample": False, "until": []}
    assert cfg["metric_list"] == [{"metric": "accuracy", "higher_is_better": True}]
    assert cfg["metadata"] == {"version": toy_task.version}
    back = records.read_record(tmp_path / "o")  # and the record reads back whole
    assert back.task_configs["toy"] == cfg and back.n_original == {"toy": 80} and back.packages["molmo_eval"]
    utils = pytest.importorskip("lmms_eval.utils")
    table = utils.make_table(data)
    assert "toy" in table and "accuracy" in table and "↑" in table


def test_schema_1_records_still_read(tmp_path):
    from molmo_eval.core.types import RunRecord

    old = {"schema_version": 1, "run_id": "r", "created": "", "status": "ok", "config": {},
           "versions": {"molmo_eval": "0.1.0"}, "versions_tasks": {}, "model": {"name": "m", "fingerprint": "f",
                                                                               "coord_space": "pixels"},
           "tasks": {}, "n-samples": {}}
    rec = RunRecord.from_json(old)
    assert rec.packages == {"molmo_eval": "0.1.0"} and rec.task_configs == {} and rec.world_size == 1

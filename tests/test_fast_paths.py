"""Issue 16: every fast path gives exactly what the plain path it stands in for gives.

The harness reads large official files through msgspec, loads VQAv2 column by column, scores VQA
answers of a whole batch with numpy, groups breakdown rows once, draws bootstrap indices a block at
a time and streams samples.jsonl; each is checked here against the straightforward computation
(the standard library, the per-record loader, the per-question scorer, boolean masks, one draw, the
whole line dumped at once), on messy inputs. Speed itself is measured by the benches in bench/.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from molmo_eval.core import jsonio, registry
from molmo_eval.core.errors import DataError
from molmo_eval.core.types import CoordSpace, Generation
from molmo_eval.data import files
from molmo_eval.data.embedded import default_data_root
from molmo_eval.metrics import stats, vqa
from molmo_eval.metrics.generic import f1, mean, ratio
from molmo_eval.run.guard import score_sample, score_samples
from molmo_eval.run.loading import load_split
from molmo_eval.run.samplelog import LineSpool, join_line, line_parts
from molmo_eval.run.scoring import sample_line

# --- JSON: msgspec where it can, the standard library's verdict everywhere ---------------------

TRICKY = [b'[NaN, Infinity, -Infinity]', b'[1e400]', b'[' + b'9' * 30 + b']', b'[18446744073709551616]',
          b'{"a": 1, "a": 2}', b'["\\ud800"]', b'["a\\u0000b"]', b'\xef\xbb\xbf[1]', '["\u00e9"]'.encode("utf-16"),
          b'[-0, -0.0, 5e-324, 0.30000000000000004, 9007199254740993]', b'  {"x": [true, false, null]}  ',
          b'["\xe2\x82\xac", "\\u20ac", "\\ud83d\\ude00"]', b'[1] x', b'[01]', b'["a\tb"]', b'["\xff"]', b'[1,]',
          b'[' * 100_000 + b']' * 100_000, b'[' + b'1' * 4301 + b']', b'']


def _std(text: bytes) -> object:
    try:
        return ("ok", repr(json.loads(text)))
    except (ValueError, RecursionError):
        return ("error", None)


def _ours(text: bytes) -> object:
    try:
        return ("ok", repr(jsonio.loads(text, path="x.json")))
    except DataError:
        return ("error", None)


@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_reading_json_gives_what_the_standard_library_gives(text: bytes) -> None:
    assert jsonio.fast_decoder() is not None, "msgspec is a declared dependency"
    assert _ours(text) == _std(text)


def test_random_documents_read_alike() -> None:
    rng = random.Random(0)

    def value(depth: int = 0) -> object:
        r = rng.random()
        if depth > 3 or r < 0.4:
            return rng.choice([rng.uniform(-1e300, 1e300) * 10.0 ** -rng.randint(0, 300),
                               rng.randint(-2 ** 70, 2 ** 70), rng.choice([True, False, None]),
                               "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 6)))])
        if r < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {str(value(4)): value(depth + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(3000):
        text = json.dumps(value(), ensure_ascii=rng.random() < 0.5).encode()
        assert _ours(text) == _std(text), text[:200]


def test_without_msgspec_the_standard_library_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonio, "fast_decoder", lambda: None)
    assert jsonio.loads(b'{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}
    assert files.read_json_typed(Path(__file__), "x", list[int]) is None


# --- VQAv2: the column-wise fast loader and the per-record generic loader ------------------------

def _write_vqav2(d: Path, annotations: list[dict], questions: list[dict]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "v2_mscoco_val2014_annotations.json").write_text(json.dumps({"annotations": annotations}))
    (d / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps({"questions": questions}))
    return d


def _ann(qid: object, answers: list[str], ids: list[object] | None = None, **extra: object) -> dict:
    ids = ids if ids is not None else list(range(1, len(answers) + 1))
    return {"question_id": qid, "image_id": 7, "question_type": "what", "answer_type": "other",
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i} for a, i in zip(answers, ids)],
            **extra}


def _both(d: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    task = registry.get_task("vqav2")

    def load() -> object:
        try:
            return task.load(d, "val2014")
        except DataError as e:
            return str(e)

    fast = load()
    with monkeypatch.context() as m:
        m.setattr(jsonio, "fast_decoder", lambda: None)
        generic = load()
    return fast, generic


CASES = {
    "usual": ([_ann(1, ["yes"] * 10), _ann("2", ["A dog", "dog"] * 5), _ann(3, ["2", "two", "Two."] * 3 + ["1"])],
              [{"question_id": 1, "image_id": 7, "question": "q?"}, {"question_id": "2", "image_id": 7, "question": "q?"},
               {"question_id": 3, "image_id": 9, "question": "r?"}]),
    "answer ids repeat (leave-one-out groups)": ([_ann(1, ["a", "b", "a"], ids=[1, 1, 2])],
                                                 [{"question_id": 1, "image_id": 1, "question": "q"}]),
    "different numbers of answers": ([_ann(1, ["a"] * 3), _ann(2, ["b"] * 10)],
                                     [{"question_id": 2, "image_id": 1, "question": "q"},
                                      {"question_id": 1, "image_id": 2, "question": "r"}]),
    "answer ids as strings": ([_ann(1, ["a", "b"], ids=["x", "y"])], [{"question_id": 1, "image_id": 1, "question": "q"}]),
    "a question annotated twice": ([_ann(1, ["a"]), _ann(1, ["b"])], [{"question_id": 1, "image_id": 1, "question": "q"}]),
    "no answers": ([_ann(1, [])], [{"question_id": 1, "image_id": 1, "question": "q"}]),
    "a question without annotation": ([_ann(1, ["a"])], [{"question_id": 2, "image_id": 1, "question": "q"}]),
    "a bool id": ([_ann(True, ["a"])], [{"question_id": True, "image_id": 1, "question": "q"}]),
    "a float image id": ([_ann(1, ["a"])], [{"question_id": 1, "image_id": 1.0, "question": "q"}]),
    "an answer that is not text": ([{**_ann(1, ["a"]), "answers": [{"answer": 3, "answer_id": 1}]}],
                                   [{"question_id": 1, "image_id": 1, "question": "q"}]),
    "no answer ids": ([{**_ann(1, ["a", "a"]), "answers": [{"answer": "a"}, {"answer": "a"}]}],
                      [{"question_id": 1, "image_id": 1, "question": "q"}]),
}


@pytest.mark.parametrize("case", CASES)
def test_the_fast_vqav2_loader_gives_the_generic_loaders_samples_or_error(case: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    d = _write_vqav2(tmp_path, *CASES[case])
    fast, generic = _both(d, monkeypatch)
    assert fast == generic


def test_the_fast_vqav2_loader_on_the_mini_world(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, generic = _both(default_data_root() / "vqav2", monkeypatch)
    assert isinstance(fast, list) and len(fast) > 100 and fast == generic


def test_fast_and_generic_prediction_readers_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    task = registry.get_task("vqav2")
    samples = task.load(default_data_root() / "vqav2", "val2014")
    preds = [{"question_id": int(s.id), "answer": f"answer {i}\n"} for i, s in enumerate(samples)]
    files_ = {"ok": preds, "unknown id": preds + [{"question_id": 999_999_999, "answer": "x"}],
              "twice": preds + preds[:1], "not text": preds[:-1] + [{"question_id": int(samples[-1].id), "answer": 1}]}
    for name, data in files_.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))

        def read(path: Path = path) -> object:
            try:
                return task.read_predictions(path, samples)
            except DataError as e:
                return str(e)

        fast = read()
        with monkeypatch.context() as m:
            m.setattr(jsonio, "fast_decoder", lambda: None)
            assert read() == fast, name


# --- VQA accuracy of a batch and of one question -------------------------------------------------

WORDS = ["yes", "Yes", "no", "No.", "2", "two", "a dog", "the dog", "dog", "1,000", "1000", "3.5", "cant tell",
         "can't tell", "tennis-racket", "tennis racket", " x\n", "", "none", "0", "it's", "its", "a-b 1,2", "5."]


@pytest.mark.parametrize("variant", sorted(vqa.SCORERS))
@pytest.mark.parametrize("n", [7, 3000])
def test_batch_accuracy_is_the_per_question_accuracy_bit_for_bit(variant: str, n: int) -> None:
    rng = random.Random(n)
    preds, sets, groups = [], [], []
    for _ in range(n):
        k = rng.choice([10, 10, 10, 3, 1, 0])
        answers = [rng.choice(WORDS)] * k if rng.random() < 0.3 else [rng.choice(WORDS) for _ in range(k)]
        preds.append(rng.choice(WORDS + [None]))
        sets.append(tuple(answers) if rng.random() < 0.5 else answers)  # lists after a JSON round trip
        groups.append(tuple(rng.randint(0, 2) for _ in range(k)) if k and rng.random() < 0.05 else None)
    batch = vqa.batch_accuracy(variant, preds, sets, groups)
    one = [0.0 if not isinstance(p, str) else vqa.SCORERS[variant](p, tuple(a), g)
           for p, a, g in zip(preds, sets, groups)]
    assert [type(v) for v in batch] == [float] * n
    assert batch == one  # exact: the same float operations in the same order


@pytest.mark.parametrize("variant", sorted(vqa.SCORERS))
@pytest.mark.parametrize("limit", [3, 1 << 21])
def test_codes_kept_from_batch_to_batch_change_no_value(variant: str, limit: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch after batch on one kept code table (or one started afresh every few strings), each
    batch with strings of its own and strings met before, as a split scored in chunks is."""
    monkeypatch.setattr(vqa, "_coders", {})
    monkeypatch.setattr(vqa, "_CODER_LIMIT", limit)
    rng = random.Random(limit)
    for b in range(4):
        words = WORDS + [f"new{b} {w}" for w in WORDS[:8]]
        sets = [[rng.choice(words) for _ in range(10)] for _ in range(400)]
        preds = [rng.choice(words) for _ in sets]
        batch = vqa.batch_accuracy(variant, preds, sets, [None] * len(sets))
        assert batch == [vqa.SCORERS[variant](p, tuple(a)) for p, a in zip(preds, sets)], b


# --- scoring many samples at once, under the guard -----------------------------------------------

def _outputs(rng: random.Random, samples: list) -> list[Generation | None]:
    texts = ["yes", "No", "A", "B.", "2", "(10, 20)", "<point> <x_5> <y_7>", "[1, 2, 30, 40]", "", "\ud800", "nan"]
    out: list[Generation | None] = []
    for _ in samples:
        r = rng.random()
        out.append(None if r < 0.05 else Generation("", error="model: boom") if r < 0.1
                   else Generation(rng.choice(texts)))
    return out


@pytest.mark.parametrize("name", ["vqav2", "textvqa", "gqa", "pope", "mmbench", "refcoco", "pointqa"])
def test_score_samples_is_score_sample_of_each(name: str) -> None:
    task = registry.get_task(name)
    samples = []
    for split in task.default_splits:
        samples += load_split(task, default_data_root() / task.data_dir, split)[0][:300]
    gens = _outputs(random.Random(1), samples)
    space = CoordSpace.BINS
    assert score_samples(task, samples, gens, space) == [score_sample(task, s, g, space) for s, g in zip(samples, gens)]


def test_a_batch_that_raises_is_scored_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    task = registry.get_task("vqav2")
    samples = load_split(task, default_data_root() / "vqav2", "val2014")[0][:20]
    gens = [Generation("yes") for _ in samples]
    real = type(task).score

    def score(self, sample, answer):  # one sample's answer makes the scorer raise, another's return text
        if sample is samples[3] and answer.parse_ok:
            raise ZeroDivisionError("boom")
        sc = real(self, sample, answer)
        return type(sc)(sc.uid, {"accuracy": "high"}) if sample is samples[5] and answer.parse_ok else sc

    monkeypatch.setattr(type(task), "score", score)
    monkeypatch.setattr(type(task), "score_batch", lambda self, s, a: [self.score(x, y) for x, y in zip(s, a)])
    got = score_samples(task, samples, gens, CoordSpace.PIXELS)
    assert got == [score_sample(task, s, g, CoordSpace.PIXELS) for s, g in zip(samples, gens)]
    assert "ZeroDivisionError: boom" in got[3].error and "holds str" in got[5].error
    assert [i for i, s in enumerate(got) if s.error] == [3, 5]


# --- aggregation ------------------------------------------------------------------------------------

def _reference_breakdown(metrics, cols, group, seed, label, n_boot):
    """The breakdown as it was computed before issue 16: a boolean mask per value."""
    keys = cols[group]
    out = {}
    for key in sorted(set(keys.tolist()), key=str):
        if key == "":
            continue
        sub = {k: v[keys == key] for k, v in cols.items()}
        out[str(key)] = stats.aggregate(metrics, sub, seed=seed, label=f"{label}/{group}={key}", n_boot=n_boot)
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    fa, fb = (a.value, a.ci_low, a.ci_high, a.n), (b.value, b.ci_low, b.ci_high, b.n)  # type: ignore[attr-defined]
    return all(x == y or (x != x and y != y) for x, y in zip(fa, fb))


@pytest.mark.parametrize("n", [1, 6, 777, 20_001])
def test_grouped_breakdowns_and_blocked_bootstrap_give_the_same_numbers(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(n)
    cols = {"a": rng.random(n), "b": np.where(rng.random(n) < 0.2, np.nan, rng.random(n)),
            "tp": rng.integers(0, 2, n).astype(float), "fp": rng.integers(0, 2, n).astype(float),
            "fn": rng.integers(0, 2, n).astype(float), "split": np.array(["s"] * n, dtype=object),
            "g": np.array([("", "x", "y", "z 1")[i] for i in rng.integers(0, 4, n)], dtype=object)}
    metrics = [mean("a"), mean("b"), ratio("r", "tp", "fp"), f1("f", "tp", "fp", "fn")]
    got = stats.breakdown(metrics, cols, "g", seed=3, label="t", n_boot=300)
    assert _same(got, _reference_breakdown(metrics, cols, "g", 3, "t", 300))
    overall = stats.aggregate(metrics, cols, seed=3, label="t", n_boot=1000)
    monkeypatch.setattr(stats, "_BLOCK_ELEMS", 10 ** 12)  # every replicate drawn and evaluated at once
    assert _same(overall, stats.aggregate(metrics, cols, seed=3, label="t", n_boot=1000))
    monkeypatch.setattr(stats, "_BLOCK_ELEMS", 1)  # one replicate at a time
    assert _same(overall, stats.aggregate(metrics, cols, seed=3, label="t", n_boot=1000))


def test_group_rows_are_the_rows_each_value_selects() -> None:
    keys = np.array(["b", "a", "b", "", "c", "a", "b"], dtype=object)
    rows = stats.group_rows(keys)
    assert list(rows) == ["b", "a", "", "c"]
    for k, idx in rows.items():
        assert idx.tolist() == np.flatnonzero(keys == k).tolist()


# --- the per-sample log ---------------------------------------------------------------------------

def test_a_streamed_line_is_the_whole_line_dumped_at_once() -> None:
    """The runner spools each line without its scores and joins them later (finalize may change them):
    the bytes are those of the whole line dumped at once, whatever the text holds."""
    task = registry.get_task("pointqa")
    samples = load_split(task, default_data_root() / task.data_dir, task.default_splits[0])[0][:50]
    spool, scores, expected = LineSpool(), [], []
    for i, (s, g) in enumerate(zip(samples, _outputs(random.Random(2), samples))):
        sc = score_sample(task, s, g, CoordSpace.BINS)
        values = dict(sc.score.values, extra=math.nan) if i % 3 == 0 else sc.score.values
        score = type(sc.score)(sc.score.uid, values, {"note": "x\ud800\n"} if i % 4 == 0 else sc.score.fields)
        prompt = "p\u2028\"\ud800\0" if i % 5 == 0 else "p"
        spool.add(line_parts(s, prompt, g, sc.answer, error=sc.error, cached=bool(i % 2)))
        scores.append(score)
        expected.append(jsonio.dumps(sample_line(s, prompt, g, sc.answer, score, error=sc.error,
                                                 cached=bool(i % 2))) + "\n")
    joined = [join_line(parts, score) for parts, score in zip(spool, scores)]
    spool.close()
    assert joined == expected


# --- VQAv2 scored column-wise (`score --predictions --json`) and sample by sample ------------------

def _random_vqav2(d: Path, rng: random.Random, n: int = 600) -> tuple[Path, list[dict]]:
    """A split whose annotations are not in question order, with WORDS as answers and predictions."""
    questions = [{"question_id": 1000 + i, "image_id": i % 37, "question": f"q{i}?"} for i in range(n)]
    annotations = [_ann(q["question_id"], [rng.choice(WORDS[:8] if rng.random() < 0.5 else WORDS) for _ in range(10)],
                        answer_type=rng.choice(["yes/no", "number", "other"]),
                        question_type=rng.choice(["what", "how many", "is the"])) for q in questions]
    rng.shuffle(annotations)
    preds = [{"question_id": q["question_id"], "answer": rng.choice(WORDS)} for q in questions]
    return _write_vqav2(d, annotations, questions), preds


def _per_sample_columns(task: object, d: Path, path: Path) -> tuple[dict, int]:
    samples, _ = load_split(task, d, "val2014")
    gens = task.read_predictions(path, samples)
    scored = score_samples(task, samples, [gens.get(s.uid) for s in samples], CoordSpace.PIXELS)
    n_unparseable = sum(1 for sc in scored if sc.answer is not None and not sc.answer.parse_ok)
    return stats.columns(samples, task.finalize(samples, [sc.score for sc in scored])), n_unparseable


@pytest.mark.parametrize("variant", ["official", "lmms-eval"])
@pytest.mark.parametrize("shuffled", [False, True])
def test_column_wise_scoring_gives_the_per_sample_columns_bit_for_bit(variant: str, shuffled: bool,
                                                                      tmp_path: Path) -> None:
    rng = random.Random(7)
    task = registry.get_task("vqav2", variant)
    d, preds = _random_vqav2(tmp_path, rng)
    if shuffled:
        rng.shuffle(preds)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(preds))
    scored = task.score_prediction_columns(d, "val2014", path)
    assert scored is not None
    expected, n_unparseable = _per_sample_columns(task, d, path)
    assert sorted(scored.cols) == sorted(expected) and scored.n_unparseable == n_unparseable > 0
    for k, col in expected.items():
        assert col.dtype == scored.cols[k].dtype and np.array_equal(col, scored.cols[k]), k
    assert 0 < float(np.mean(scored.cols["accuracy"])) < 1


def test_column_wise_scoring_on_the_mini_world(tmp_path: Path) -> None:
    task = registry.get_task("vqav2")
    d = default_data_root() / "vqav2"
    samples, _ = load_split(task, d, "val2014")
    path = tmp_path / "results.json"
    path.write_text(json.dumps([{"question_id": int(s.id), "answer": t}
                                for s, t in zip(samples, ["yes", "2", "Two", "red", " no\n"] * len(samples))]))
    expected, _ = _per_sample_columns(task, d, path)
    scored = task.score_prediction_columns(d, "val2014", path)
    assert scored is not None and all(np.array_equal(expected[k], scored.cols[k]) for k in expected)


DECLINED = {
    "a question without a prediction": lambda preds: preds[1:],
    "a prediction of an unknown question": lambda preds: [*preds, {"question_id": 5, "answer": "x"}],
    "a question predicted twice": lambda preds: [*preds, preds[0]],
    "a prediction that is not text": lambda preds: [{**preds[0], "answer": 3}, *preds[1:]],
}


@pytest.mark.parametrize("case", DECLINED)
def test_column_wise_scoring_leaves_unusual_predictions_to_the_per_sample_path(case: str, tmp_path: Path) -> None:
    task = registry.get_task("vqav2")
    d, preds = _random_vqav2(tmp_path, random.Random(1), n=20)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(DECLINED[case](preds)))
    assert task.score_prediction_columns(d, "val2014", path) is None


@pytest.mark.parametrize("case", CASES)
def test_column_wise_scoring_of_unusual_splits_is_the_per_sample_one_or_none(case: str, tmp_path: Path) -> None:
    """Either the per-sample columns, or None where the per-sample path refuses the split or scores it
    otherwise (leave-one-out groups, questions with different numbers of answers)."""
    task = registry.get_task("vqav2")
    d = _write_vqav2(tmp_path, *CASES[case])
    path = tmp_path / "results.json"
    path.write_text(json.dumps([{"question_id": q["question_id"], "answer": "a"} for q in CASES[case][1]]))
    scored = task.score_prediction_columns(d, "val2014", path)
    try:
        expected, _ = _per_sample_columns(task, d, path)
    except DataError:
        assert scored is None
        return
    declined = ("answer ids repeat (leave-one-out groups)", "different numbers of answers", "no answer ids")
    assert (scored is None) == (case in declined)
    if scored is not None:
        assert all(np.array_equal(expected[k], scored.cols[k]) for k in expected)


@pytest.mark.parametrize("variant", ["official", "lmms-eval"])
def test_score_json_column_wise_prints_what_the_per_sample_path_prints(variant: str, tmp_path: Path, capsys,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from molmo_eval.cli import main
    from molmo_eval.run import guard

    d, preds = _random_vqav2(tmp_path / "data" / "vqav2", random.Random(3))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(preds))
    args = ["score", "--task", "vqav2", "--variant", variant, "--data-root", str(tmp_path / "data"),
            "--predictions", str(path), "--json"]
    assert main([*args, "--output-path", str(tmp_path / "run")]) == 0  # written: sample by sample
    per_sample = capsys.readouterr().out

    def no_samples(*a: object, **k: object) -> None:
        raise AssertionError("scored sample by sample")

    monkeypatch.setattr(guard, "score_samples", no_samples)
    assert main(args) == 0
    assert capsys.readouterr().out == per_sample

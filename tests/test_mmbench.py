"""MMBench: VLMEvalKit's TSV layout, circular expansion (CIRCULAR tool), CircularEval, predictions.

Expected rotations are derived by hand from the tool's rule: rotation i relabels option labels[j] as
rot_i[j] with rot = ABCD, DABC, CDAB, BCDA (deque.rotate(1)); copies get index + i * 1e6.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import pytest
from PIL import Image

from molmo_eval.core.errors import DataError, MissingDependency
from molmo_eval.core.task import ParseContext
from molmo_eval.core.types import Generation
from molmo_eval.metrics import stats
from molmo_eval.metrics.mmbench import circularize, is_abnormal, rotations
from molmo_eval.tasks.mmbench import MMBench, pandas_column

COLS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "split", "image"]


def _b64(color=(200, 30, 30)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="JPEG", quality=95)
    return base64.b64encode(buf.getvalue()).decode("ascii")


IMG = _b64()

BASE = [
    # index, question, hint, A, B, C, D, answer, category, l2-category
    ["5", "Which animal?", "", "cat", "dog", "bird", "fish", "A", "cp", "perception"],
    ["6", "Is it red?", "A hint", "yes", "no", "", "", "B", "cp", "perception"],
    ["7", "Which?", "", "A and B", "neither", "", "", "A", "lr", "reasoning"],  # option names two labels
    ["8", "Which letter?", "", "C", "D", "E", "", "A", "lr", "reasoning"],  # an option that is a label
    ["9", "Pick", "", "up", "down", "", "", "C", "lr", "reasoning"],  # answer not among the options
]


def tsv(rows, cols=COLS) -> str:
    lines = ["\t".join(cols)]
    for r in rows:
        full = r + ["dev", IMG] if len(r) == len(COLS) - 2 else r
        lines.append("\t".join(full))
    return "\n".join(lines) + "\n"


def write(root: Path, text: str) -> Path:
    d = root / "mmbench"
    d.mkdir(parents=True, exist_ok=True)
    (d / "MMBench_DEV_EN.tsv").write_text(text, encoding="utf-8")
    return d


@pytest.fixture
def samples(tmp_path):
    return MMBench().load(write(tmp_path, tsv(BASE)), "dev_en")


def test_rotations():
    assert rotations(4) == ["ABCD", "DABC", "CDAB", "BCDA"]
    assert rotations(2) == ["AB", "BA"]


def test_abnormal_entries():
    assert is_abnormal({"A": "A and B", "B": "neither"})
    assert is_abnormal({"A": "C", "B": "x"})
    assert is_abnormal({"A": "BC", "B": "x"})  # a substring of the alphabet counts as a label
    assert not is_abnormal({"A": "A cat", "B": "dog"})  # one label word is fine
    assert not is_abnormal({"A": "cat", "B": "dog"})


def test_base_file_is_expanded_like_the_circular_tool(samples):
    by_id = {s.id: s for s in samples}
    assert sorted(by_id, key=int) == ["5", "6", "7", "8", "9", "1000005", "1000006", "2000005", "3000005"]
    expect = {
        "5": ({"A": "cat", "B": "dog", "C": "bird", "D": "fish"}, "A"),
        "1000005": ({"D": "cat", "A": "dog", "B": "bird", "C": "fish"}, "D"),
        "2000005": ({"C": "cat", "D": "dog", "A": "bird", "B": "fish"}, "C"),
        "3000005": ({"B": "cat", "C": "dog", "D": "bird", "A": "fish"}, "B"),
        "6": ({"A": "yes", "B": "no"}, "B"),
        "1000006": ({"B": "yes", "A": "no"}, "A"),
        "7": ({"A": "A and B", "B": "neither"}, "A"),
    }
    for sid, (choices, answer) in expect.items():
        assert dict(by_id[sid].target["choices"]) == choices, sid
        assert by_id[sid].target["answer"] == answer, sid
    assert [by_id[s].target["group"] for s in ("5", "1000005", "2000005", "3000005")] == ["5"] * 4
    assert by_id["5"].target["main"] and not by_id["2000005"].target["main"]
    assert by_id["1000006"].image.b64 == IMG  # the copy's image is the base row's index, resolved
    assert by_id["1000005"].meta == {"category": "cp", "l2_category": "perception"}


def test_prompt_is_vlmevalkit_build_prompt(samples):
    s = {x.id: x for x in samples}
    assert MMBench().prompt(s["6"]) == ("Hint: A hint\nQuestion: Is it red?\nOptions:\nA. yes\nB. no\n"
                                        "Please select the correct answer from the options above. \n")
    assert MMBench().prompt(s["5"]).startswith("Question: Which animal?\nOptions:\nA. cat\n")
    assert MMBench().prompt(s["5"], "molmo").endswith("letter from the given choices directly.")


def _run(samples, answers):
    task = MMBench()
    scores = [task.score(s, task.parse(s, Generation(text=answers.get(s.id, "")), ParseContext()))
              for s in samples]
    final = task.finalize(samples, scores)
    return stats.summarize(task.metrics(), stats.columns(samples, final), task.breakdowns, seed=0,
                           label="mmbench", n_boot=200), final


def test_circular_eval(samples):
    answers = {
        "5": "A", "1000005": "D. cat", "2000005": "The answer is C", "3000005": "cat",  # all correct: hit
        "6": "B", "1000006": "I am not sure",  # one failed extraction fails the group
        "7": "A",  # abnormal row: a group of one, correct
        "8": "B",  # wrong
        "9": "C",  # "C" is not an option of this row: unresolved -> wrong
    }
    (overall, groups), final = _run(samples, answers)
    assert overall["circular_accuracy"].value == pytest.approx(2 / 5) and overall["circular_accuracy"].n == 5
    assert overall["vanilla_accuracy"].value == pytest.approx(3 / 5)  # rows 5, 6, 7 right; 8, 9 wrong
    assert groups["category"]["cp"]["circular_accuracy"].value == pytest.approx(1 / 2)
    assert groups["category"]["lr"]["circular_accuracy"].value == pytest.approx(1 / 3)
    assert groups["l2_category"]["perception"]["vanilla_accuracy"].value == pytest.approx(1.0)
    by_id = {s.id: sc for s, sc in zip(samples, final, strict=True)}
    assert by_id["6"].values["circular"] == 0.0 and by_id["6"].values["vanilla"] == 1.0
    assert math.isnan(by_id["1000006"].values["circular"]) and by_id["1000006"].fields["group"] == "6"


def test_one_wrong_rotation_fails_the_group(samples):
    answers = {"5": "A", "1000005": "D", "2000005": "C", "3000005": "A"}  # last rotation wrong
    (overall, _), final = _run([s for s in samples if s.target["group"] == "5"], answers)
    assert overall["circular_accuracy"].value == 0.0 and overall["vanilla_accuracy"].value == 1.0


def test_pre_expanded_file_is_used_as_is(tmp_path):
    rows = [["11", "q", "", "x", "y", "", "", "A", "c", "l", "dev", IMG],
            ["1000011", "q", "", "y", "x", "", "", "B", "c", "l", "dev", "11"],
            ["12", "q", "", "x", "y", "", "", "B", "c", "l", "dev", IMG]]  # 12 has no copies in this file
    loaded = MMBench().load(write(tmp_path, tsv(rows)), "dev_en")
    assert [s.id for s in loaded] == ["11", "1000011", "12"]
    assert loaded[1].target["group"] == "11" and loaded[1].image.b64 == IMG
    assert dict(loaded[1].target["choices"]) == {"A": "y", "B": "x"}


def test_cells_are_read_as_pandas_reads_them():
    assert pandas_column(["1", "2"]) == ["1", "2"]
    assert pandas_column(["1", ""]) == ["1.0", None]  # an int column with a gap becomes float
    assert pandas_column(["1", "2.5"]) == ["1.0", "2.5"]
    assert pandas_column(["None", "NA", "n/a", "x"]) == [None, None, None, "x"]
    assert pandas_column(["true", "FALSE"]) == ["True", "False"]
    assert pandas_column(["True", "1"]) == ["True", "1"]
    assert pandas_column(["00012", " 3"]) == ["12", "3"]
    assert pandas_column(["1_0", "2"]) == ["1_0", "2"]
    assert pandas_column(["inf", "1e3"]) == ["inf", "1000.0"]


def test_numeric_options_after_expansion(tmp_path):
    rows = [["1", "How many?", "", "2", "3", "4", "", "A", "c", "l"],
            ["2", "How many?", "", "5", "6", "", "", "B", "c", "l"]]
    by_id = {s.id: s for s in MMBench().load(write(tmp_path, tsv(rows)), "dev_en")}
    # base columns: A, B int; C float (a gap). Written out and read back, every option column is float.
    assert dict(by_id["1"].target["choices"]) == {"A": "2.0", "B": "3.0", "C": "4.0"}
    assert dict(by_id["1000001"].target["choices"]) == {"A": "3.0", "B": "4.0", "C": "2.0"}


def test_option_gap_and_missing_columns_are_data_errors(tmp_path):
    gap = [["1", "q", "", "x", "", "z", "", "A", "c", "l"]]
    with pytest.raises(DataError, match="option C is present but option B is missing"):
        MMBench().load(write(tmp_path / "a", tsv(gap)), "dev_en")
    cols = [c for c in COLS if c != "answer"]
    with pytest.raises(DataError) as e:
        MMBench().load(write(tmp_path / "b", "\t".join(cols) + "\n"), "dev_en")
    assert e.value.field == "answer"
    bad_index = [["x1", "q", "", "a", "b", "", "", "A", "c", "l"]]
    with pytest.raises(DataError) as e:
        MMBench().load(write(tmp_path / "c", tsv(bad_index)), "dev_en")
    assert e.value.field == "index"
    dangling = [["11", "q", "", "x", "y", "", "", "A", "c", "l", "dev", IMG],
                ["1000011", "q", "", "y", "x", "", "", "B", "c", "l", "dev", "99"]]
    with pytest.raises(DataError) as e:
        MMBench().load(write(tmp_path / "d", tsv(dangling)), "dev_en")
    assert e.value.field == "image" and "1000011" in str(e.value)
    with pytest.raises(DataError, match="MMBench_DEV_EN.tsv"):
        MMBench().load(tmp_path / "nowhere", "dev_en")


def test_read_predictions(samples, tmp_path):
    task = MMBench()
    p = tmp_path / "model_MMBench_DEV_EN.tsv"
    p.write_text("Index\tPrediction\tA\n5\tA\tignored\n6\t\tx\n7\tNone\tx\n8\t1\tx\n")
    preds = task.read_predictions(p, samples)
    by_id = {s.id: s.uid for s in samples}
    assert preds[by_id["5"]].text == "A"
    assert preds[by_id["6"]].text == "nan" and preds[by_id["7"]].text == "nan"  # str(NaN), as VLMEvalKit
    assert preds[by_id["8"]].text == "1"
    p.write_text("index\tprediction\n123\tA\n")
    with pytest.raises(DataError, match="not in the benchmark"):
        task.read_predictions(p, samples)
    p.write_text("index\tanswer\n5\tA\n")
    with pytest.raises(DataError) as e:
        task.read_predictions(p, samples)
    assert e.value.field == "prediction"


def test_xlsx_predictions_need_openpyxl(samples, tmp_path):
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        p = tmp_path / "preds.xlsx"
        p.write_bytes(b"PK")
        with pytest.raises(MissingDependency, match="openpyxl"):
            MMBench().read_predictions(p, samples)
    else:
        pytest.skip("openpyxl is installed")


def test_circularize_refuses_single_option_rows():
    with pytest.raises(ValueError, match="single option"):
        circularize([{"index": "1", "A": "x", "B": None, "answer": "A"}], ["A", "B"])


def test_limit_keeps_whole_circular_groups(tmp_path):
    """`--limit N` counts questions, with all their rotations: a model that always answers "A" is right
    on some un-rotated rows but never on every rotation, so CircularEval stays below vanilla accuracy
    (keeping only the first N rows, all un-rotated, made the two equal)."""
    from molmo_eval import evaluate
    from molmo_eval.data.embedded import default_data_root
    from molmo_eval.models.scripted import ScriptedModel
    from molmo_eval.run.runner import apply_limit

    root = default_data_root()
    task = MMBench()
    full = task.load(root / task.data_dir, "dev_en")
    sizes: dict[str, int] = {}
    for s in full:
        sizes[s.target["group"]] = sizes.get(s.target["group"], 0) + 1
    assert max(sizes.values()) > 1  # the file has circular copies
    first = list(dict.fromkeys(s.target["group"] for s in full))
    for limit, n_groups in ((4, 4), (0.1, math.ceil(0.1 * len(sizes)))):
        kept = apply_limit(task, full, limit)
        groups = {s.target["group"] for s in kept}
        assert groups == set(first[:n_groups])
        assert len(kept) == sum(sizes[g] for g in groups)  # every rotation of every kept question
    rec = evaluate("mmbench", ScriptedModel(fn=lambda r: "A"), data_root=root, limit=10, bootstrap=0,
                   use_cache=False, output_path=tmp_path / "run")
    m = rec.tasks["mmbench"].metrics
    assert m["circular_accuracy"].n == m["vanilla_accuracy"].n == 10
    assert m["circular_accuracy"].value < m["vanilla_accuracy"].value

"""Bad data gives a clear error, never a traceback, never a silent wrong number (issue 14, part 3).

Every case mutates one record of the embedded mini world's official files and expects a DataError
naming the file, the record and the field - before any model call."""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from molmo_eval.cli import main
from molmo_eval.core import registry
from molmo_eval.core.errors import DataError
from molmo_eval.data.embedded import default_data_root
from molmo_eval.data.files import read_json, safe_pickle_load
from molmo_eval.run.loading import load_split

NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def world() -> Path:
    return default_data_root()


def task_copy(world: Path, tmp: Path, name: str) -> Path:
    """The task's annotation files (not its images) copied to ``tmp``."""
    task = registry.get_task(name)
    dst = tmp / task.data_dir
    for split in task.splits:
        for f in task.data_files(world / task.data_dir, split):
            if f.is_file():
                target = dst / f.relative_to(world / task.data_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, target)
    return dst


def edit_json(path: Path, fn: Callable[[object], object]) -> None:
    data = json.loads(path.read_text())
    out = fn(data)
    path.write_text(json.dumps(data if out is None else out))  # NaN and Infinity as Python writes them


def edit_jsonl(path: Path, fn: Callable[[list], object]) -> None:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    fn(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def edit_pickle(path: Path, fn: Callable[[list], object]) -> None:
    with open(path, "rb") as f:
        refs = pickle.load(f)
    fn(refs)
    with open(path, "wb") as f:
        pickle.dump(refs, f, protocol=2)


def set_first(key: str, value: object, where: str = "images") -> Callable:
    return lambda d: d[where][0].update({key: value})


REFS = "refcoco/refs(unc).p"
INST = "refcoco/instances.json"
POINTS = "pixmo_points_eval.jsonl"
LOCAL = "pointqa_local_test.json"


def _dup_sentence(refs: list) -> None:
    refs[0]["sentences"][1]["sent_id"] = refs[0]["sentences"][0]["sent_id"]


def _dup_gqa_key(path: Path) -> None:
    items = list(json.loads(path.read_text()).items())
    path.write_text("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in [*items, items[0]]) + "}")


def _tsv_rows(path: Path) -> list[list[str]]:
    import csv

    csv.field_size_limit(1 << 30)
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter="\t"))


def _write_tsv(path: Path, rows: list[list[str]]) -> None:
    path.write_text("".join("\t".join(r) + "\n" for r in rows))


def _mmbench_g_index(path: Path) -> None:
    rows = _tsv_rows(path)
    rows[0].append("g_index")
    for r in rows[1:]:
        r.append(str(int(r[0]) % 1_000_000))
    rows[2][-1] = "x"
    _write_tsv(path, rows)


def _mmbench_dup_index(path: Path) -> None:
    rows = _tsv_rows(path)
    _write_tsv(path, [*rows, rows[1]])


def _vqav2_dup_annotation(path: Path) -> None:
    edit_json(path, lambda d: d["annotations"].append(dict(d["annotations"][0], answer_type="other")))


# (case, task, split, file under the task folder, mutation of that file, substrings of the message)
CASES = [
    ("refcoco width NaN", "refcoco", "val", INST, lambda p: edit_json(p, set_first("width", NAN)), ["width"]),
    ("refcoco width Infinity", "refcoco", "val", INST, lambda p: edit_json(p, set_first("width", INF)), ["width"]),
    ("refcoco width 0", "refcoco", "val", INST, lambda p: edit_json(p, set_first("width", 0)), ["width"]),
    ("refcoco height negative", "refcoco", "val", INST, lambda p: edit_json(p, set_first("height", -240)),
     ["height"]),
    ("refcoco width fractional", "refcoco", "val", INST, lambda p: edit_json(p, set_first("width", 12.5)),
     ["width"]),
    ("refcoco width true", "refcoco", "val", INST, lambda p: edit_json(p, set_first("width", True)), ["width"]),
    ("refcoco bbox Infinity", "refcoco", "val", INST,
     lambda p: edit_json(p, set_first("bbox", [0, 0, INF, INF], "annotations")), ["bbox"]),
    ("refcoco bbox NaN", "refcoco", "val", INST,
     lambda p: edit_json(p, set_first("bbox", [NAN, 0, 5, 5], "annotations")), ["bbox"]),
    ("refcoco bbox negative width", "refcoco", "val", INST,
     lambda p: edit_json(p, set_first("bbox", [10, 10, -5, 3], "annotations")), ["bbox"]),
    ("refcoco duplicate image id", "refcoco", "val", INST,
     lambda p: edit_json(p, lambda d: d["images"].append(dict(d["images"][0], width=1))), ["duplicate id"]),
    ("refcoco duplicate sent_id", "refcoco", "val", REFS, lambda p: edit_pickle(p, _dup_sentence),
     ["sent_id", "duplicate"]),
    ("refcoco ann_id a list", "refcoco", "val", REFS,
     lambda p: edit_pickle(p, lambda r: r[0].update(ann_id=[1])), ["ann_id"]),
    ("refcoco 2**40-byte string", "refcoco", "val", REFS,
     lambda p: p.write_bytes(b"\x80\x04\x8d" + struct.pack("<Q", 1 << 40) + b"abc."), ["malformed pickle"]),
    ("refcoco 2**40-byte bytes", "refcoco", "val", REFS,
     lambda p: p.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 1 << 40) + b"abc."), ["malformed pickle"]),
    ("pointqa image_width NaN", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r[0].update(image_width=NAN)), ["image_width", "at line 1"]),
    ("pointqa image_width 0", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r[1].update(image_width=0)), ["image_width", "at line 2"]),
    ("pointqa image_height string", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r[0].update(image_height="224")), ["image_height"]),
    ("pointqa local image_width 0", "pointqa", "local", LOCAL,
     lambda p: edit_json(p, lambda d: d[0].update(image_width=0)), ["image_width"]),
    ("pointqa image of 10**10 pixels", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r[0].update(image_width=100_000, image_height=100_000)),
     ["image_width", "pixels"]),
    ("pointqa mask of another size", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r[0]["masks"][0].update(size=[10, 10])), ["masks"]),
    ("pointqa mask runs beyond the image", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r[0].update(masks=[{"size": [224, 224], "counts": [5, 10**9]}])),
     ["masks"]),
    ("pointqa local point outside the image", "pointqa", "local", LOCAL,
     lambda p: edit_json(p, lambda d: d[0].update(point=[1e9, 3])), ["point"]),
    ("refcoco segmentation of another size", "refcoco", "val", INST,
     lambda p: edit_json(p, set_first("segmentation", {"size": [5, 5], "counts": [25]}, "annotations")),
     ["segmentation"]),
    ("pointqa point Infinity", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r[0].update(points=[[INF, 1]])), ["points"]),
    ("pointqa box reversed", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r[0].update(boxes=[[203, 111, 177, 160]])), ["boxes"]),
    ("pointqa box NaN", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r[0].update(boxes=[[NAN, 111, 177, 160]])), ["boxes"]),
    ("pointqa duplicate id", "pointqa", "pointing", POINTS,
     lambda p: edit_jsonl(p, lambda r: r.append(dict(r[0]))), ["duplicate id", "field 'id'"]),
    ("pointqa local duplicate question_id", "pointqa", "local", LOCAL,
     lambda p: edit_json(p, lambda d: d.append(dict(d[0]))), ["question_id"]),
    ("mmbench g_index x", "mmbench", "dev_en", "MMBench_DEV_EN.tsv", _mmbench_g_index, ["g_index", "'x'"]),
    ("mmbench duplicate index", "mmbench", "dev_en", "MMBench_DEV_EN.tsv", _mmbench_dup_index,
     ["duplicate index"]),
    ("vqav2 duplicate annotation", "vqav2", "val2014", "v2_mscoco_val2014_annotations.json",
     _vqav2_dup_annotation, ["second annotation", "question_id"]),
    ("vqav2 duplicate question", "vqav2", "val2014", "v2_OpenEnded_mscoco_val2014_questions.json",
     lambda p: edit_json(p, lambda d: d["questions"].append(d["questions"][0])), ["duplicate"]),
    ("textvqa image_width 0", "textvqa", "val", "TextVQA_0.5.1_val.json",
     lambda p: edit_json(p, lambda d: d["data"][0].update(image_width=0)), ["image_width"]),
    ("gqa duplicate question id", "gqa", "testdev_balanced", "testdev_balanced_questions.json", _dup_gqa_key,
     ["occurs twice"]),
    ("pope empty file", "pope", "random", "coco_pope_random.json", lambda p: p.write_text(""),
     ["holds no samples"]),
    ("pope blank lines", "pope", "random", "coco_pope_random.json", lambda p: p.write_text("\n\n  \n"),
     ["holds no samples"]),
    ("pope duplicate question_id", "pope", "random", "coco_pope_random.json",
     lambda p: p.write_text(p.read_text() + p.read_text().splitlines()[0] + "\n"), ["duplicate"]),
    ("json integer of 5000 digits", "pope", "random", "coco_pope_random.json",
     lambda p: p.write_text('{"question_id": ' + "7" * 5000 + "}\n"), ["not readable JSON", "at line 1"]),
    ("json nested too deeply", "vqav2", "val2014", "v2_mscoco_val2014_annotations.json",
     lambda p: p.write_text("[" * 200_000 + "]" * 200_000), ["nested too deeply"]),
    ("json not utf-8", "gqa", "testdev_balanced", "testdev_balanced_questions.json",
     lambda p: p.write_bytes(b'{"a": "\xff\xfe"}'), ["not UTF-8"]),
]


@pytest.mark.parametrize("case,task,split,rel,mutate,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_data_is_a_data_error_naming_file_record_and_field(world, tmp_path, case, task, split, rel,
                                                               mutate, expected):
    d = task_copy(world, tmp_path, task)
    t = registry.get_task(task)
    load_split(t, d, split)  # the copy itself is fine
    mutate(d / rel)
    with pytest.raises(DataError) as e:
        load_split(t, d, split)
    text = str(e.value)
    assert Path(rel).name in text, text
    for part in expected:
        assert part in text, (part, text)


def test_bad_data_stops_the_cli_with_exit_2_before_any_model_call(world, tmp_path, capsys):
    d = task_copy(world, tmp_path, "pointqa")
    edit_jsonl(d / POINTS, lambda r: r[0].update(image_width=0))
    code = main(["--tasks", "pointqa", "--model", "scripted", "--model-args", "outputs=/nonexistent.jsonl",
                 "--data-root", f"pointqa={d}", "--split", "pointing", "--output-path", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "image_width" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_fuzzed_pickles_never_raise_anything_but_a_data_error(world, tmp_path):
    data = (world / "refer" / REFS).read_bytes()
    rng = random.Random(14)
    path = tmp_path / "refs.p"
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(200):
        b = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(b))
            kind = rng.random()
            if kind < 0.5:
                b[i] = rng.randrange(256)
            elif kind < 0.8:  # a length-like run of 0xff: declares huge strings
                b[i:i + 4] = b"\xff\xff\xff\x7f"
            else:
                del b[i:i + rng.randint(1, 64)]
        path.write_bytes(bytes(b))
        try:
            safe_pickle_load(path)
            outcomes["loaded"] += 1
        except DataError as e:
            assert str(path) in str(e)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100  # most mutations break the stream; none may escape as another error


def test_a_fifo_at_a_data_path_is_refused_without_blocking(world, tmp_path):
    d = task_copy(world, tmp_path, "pope")
    fifo = d / "coco_pope_random.json"
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        load_split(registry.get_task("pope"), d, "random")
    with pytest.raises(DataError, match="not a regular file"):
        read_json(fifo)


def test_a_fifo_or_device_at_an_image_path_fails_that_sample_only(toy_task, toy_root, tmp_path):
    from molmo_eval import evaluate
    from molmo_eval.models.scripted import ScriptedModel
    from molmo_eval.run import records

    images = toy_root / "toy" / "images"
    (images / "a_3.png").unlink()
    os.mkfifo(images / "a_3.png")  # nobody ever writes to it: reading it would block forever
    (images / "a_4.png").unlink()
    (images / "a_4.png").symlink_to("/dev/zero")
    model = ScriptedModel(fn=lambda r: "red")
    rec = evaluate("toy", model, data_root=toy_root, bootstrap=0, use_cache=False, output_path=tmp_path / "o")
    assert rec.tasks["toy"].n == 40 and rec.tasks["toy"].n_failed == 2 and rec.status == "partial"
    errors = {ln["uid"]: ln["error"] for ln in records.iter_samples(tmp_path / "o") if ln["error"]}
    assert set(errors) == {"toy/a/3", "toy/a/4"} and all("not a regular file" in e for e in errors.values())


TOML = [
    ('batch_size = "8"', "batch_size"),
    ("tasks = 5", "tasks"),
    ('tasks = ["toy", 3]', "tasks"),
    ("splits = 3", "splits"),
    ('model_args = "x"', "model_args"),
    ("[model_args]\na = { b = 1 }", "model_args"),
    ('log_samples = "yes"', "log_samples"),
    ("limit = true", "limit"),
    ("output_path = 5", "output_path"),
    ("max_failures = [1]", "max_failures"),
    ('data_root = ["a"]', "data_root"),
    ("[variants]\ntoy = 1", "variants"),
    ("seed = 1.5", "seed"),
    ("workers = 0", "workers"),
    ("bootstrap = -1", "bootstrap"),
    ("use_cache = 1", "use_cache"),
    ("limit = " + "9" * 5000, "invalid TOML"),
]


@pytest.mark.parametrize("line,key", TOML, ids=[t[1] + ":" + t[0][:20] for t in TOML])
def test_toml_values_of_the_wrong_type_are_named(toy_task, toy_root, tmp_path, capsys, line, key):
    conf = tmp_path / "run.toml"
    head = "" if line.startswith("tasks") else 'tasks = ["toy"]\n'
    conf.write_text(head + line + "\n")
    assert main(["--config", str(conf), "--model", "scripted", "--data-root", str(toy_root)]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err, err


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_config_path_that_is_not_a_regular_file(tmp_path, capsys, kind):
    conf = tmp_path / "run.toml"
    conf.mkdir() if kind == "folder" else os.mkfifo(conf)
    assert main(["--config", str(conf)]) == 2
    assert "not a regular file" in capsys.readouterr().err

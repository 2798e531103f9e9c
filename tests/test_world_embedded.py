"""The embedded default world: generated once into the cache, verified by manifest, atomic, race-safe,
and identical to the committed reference digests; plus the `molmo-eval data` command."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import pytest

from molmo_eval.data import embedded
from molmo_eval.reference_model.world import world as world_mod
from molmo_eval.reference_model.world.world import WorldSize, write_world

TINY = WorldSize(vqav2=2, textvqa=2, gqa=2, refer=1, pope=3, mmbench=3, pointqa=4)


@pytest.fixture
def tiny_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A cache folder and a tiny 'mini' world; counts calls of the world writer."""
    monkeypatch.setenv("MOLMO_EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(world_mod.SIZES, "mini", TINY)
    monkeypatch.setattr(embedded, "REFERENCE_DIGESTS", {})
    calls = {"n": 0}
    real = world_mod.write_world

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(world_mod, "write_world", counting)
    return calls


def test_first_use_generates_then_verifies_without_regenerating(tiny_cache: dict, tmp_path: Path) -> None:
    root = embedded.default_data_root()
    assert root == tmp_path / "cache" / "data" / f"mini-v{world_mod.WORLD_VERSION}-seed0"
    assert (root / "MANIFEST.json").is_file() and (root / "pope/coco_pope_random.json").is_file()
    assert embedded.verify_manifest(root) == [] and tiny_cache["n"] == 1
    assert embedded.default_data_root() == root and tiny_cache["n"] == 1
    manifest = json.loads((root / "MANIFEST.json").read_text())
    assert len(manifest["files"]) == len(embedded.list_files(root)) and manifest["seed"] == 0


def test_a_recorded_cached_world_from_another_machine_is_generated_here(tiny_cache: dict, tmp_path: Path) -> None:
    """Reports find images of a run evaluated on a cached world (a grid on the small world) through
    the same world generated on this machine; other paths are left as recorded."""
    v = world_mod.WORLD_VERSION
    elsewhere = Path("/nonexistent/home/.cache/molmo-eval/data") / f"mini-v{v}-seed0"
    here = embedded.portable_root(elsewhere)
    assert here == tmp_path / "cache" / "data" / f"mini-v{v}-seed0" and tiny_cache["n"] == 1
    assert embedded.verify_manifest(here) == []
    for other in (Path("/nonexistent/data") / f"mini-v{v + 1}-seed0", Path("/nonexistent/my-data"),
                  Path("/nonexistent/other") / f"mini-v{v}-seed0", Path("/nonexistent/data/huge-v1-seed0")):
        assert embedded.portable_root(other) == other
    assert embedded.portable_root(tmp_path) == tmp_path and tiny_cache["n"] == 1


@pytest.mark.parametrize("damage", ["change", "delete", "add"])
def test_a_damaged_world_is_detected_and_regenerated(tiny_cache: dict, damage: str) -> None:
    root = embedded.default_data_root()
    victim = root / "vqav2/v2_mscoco_val2014_annotations.json"
    original = victim.read_bytes()
    if damage == "change":
        victim.write_bytes(original[:-1] + b" ")
    elif damage == "delete":
        victim.unlink()
    else:
        (root / "pope/extra.json").write_text("{}")
    assert embedded.verify_manifest(root)
    assert embedded.default_data_root() == root
    assert tiny_cache["n"] == 2 and victim.read_bytes() == original and embedded.verify_manifest(root) == []


def test_a_crash_during_generation_leaves_no_half_world(tiny_cache: dict, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    def crash(root, *args, **kwargs):
        (Path(root) / "vqav2").mkdir(parents=True)
        (Path(root) / "vqav2/partial.json").write_text("{")
        raise KeyboardInterrupt

    monkeypatch.setattr(world_mod, "write_world", crash)
    with pytest.raises(KeyboardInterrupt):
        embedded.default_data_root()
    data = tmp_path / "cache" / "data"
    assert list(data.iterdir()) == []  # neither the target nor the temporary folder remains


def test_two_processes_racing_end_with_one_good_world(tiny_cache: dict) -> None:
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(embedded.ensure_world(quiet=True))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1]
    assert embedded.verify_manifest(results[0]) == []
    assert [p.name for p in results[0].parent.iterdir()] == [results[0].name]


def test_reference_check_reports_mismatching_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    info = {"digest": "w", "benchmarks": {"pope": {"digests": {"pixels": "p"}}, "gqa": {"digests": {"pixels": "g"}}}}
    got = embedded.world_digests(info)
    monkeypatch.setattr(embedded, "REFERENCE_DIGESTS", dict(got, pope="0" * 64))
    assert embedded.reference_check(info) == {"checked": True, "mismatched": ["pope"]}


def test_this_machine_generates_the_reference_pope_and_mmbench_splits(tmp_path: Path) -> None:
    """The committed reference digests (pixels before JPEG, annotation files) match what this machine
    generates for two benchmarks of the default mini world; the slow test below checks all."""
    assert embedded.REFERENCE_DIGESTS, "no committed reference digests"
    info = write_world(tmp_path, "mini", 0, benchmarks=["pope", "mmbench"])
    got = embedded.world_digests(info)
    assert got["pope"] == embedded.REFERENCE_DIGESTS["pope"]
    assert got["mmbench"] == embedded.REFERENCE_DIGESTS["mmbench"]


@pytest.mark.slow
def test_this_machine_generates_the_whole_reference_mini_world(tmp_path: Path) -> None:
    info = write_world(tmp_path, "mini", 0)
    assert embedded.world_digests(info) == embedded.REFERENCE_DIGESTS


# --- the data command ------------------------------------------------------------------------------

def _run(argv: list[str]) -> int:
    from molmo_eval.commands import data

    parser = argparse.ArgumentParser(allow_abbrev=False)
    data.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_data_synth_writes_a_verified_world(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _run(["data", "synth", "--out", str(tmp_path / "w"), "--size", "mini", "--only", "pope"]) == 0
    assert (tmp_path / "w/pope/coco_pope_adversarial.json").is_file()
    assert embedded.verify_manifest(tmp_path / "w") == []
    assert "pope" in capsys.readouterr().out


def test_data_show_draws_a_contact_sheet_through_the_task_plugin(tmp_path: Path) -> None:
    from molmo_eval.core import registry

    if "pointqa" not in registry.task_names():
        pytest.skip("the pointqa plugin is not installed")
    write_world(tmp_path / "w", TINY, 0, benchmarks=["pointqa"])
    out = tmp_path / "sheet.png"
    assert _run(["data", "show", "--task", "pointqa", "--n", "4", "--data-root", str(tmp_path / "w"),
                 "--out", str(out)]) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.size[0] > 600 and im.size[1] > 300

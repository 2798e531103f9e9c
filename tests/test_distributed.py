"""Data-parallel evaluation under torchrun: 2 CPU ranks (gloo) give exactly the single-process result,
share one response cache without lock failures or duplicates, and show progress once."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from toy import make_toy_data, oracle_text

pytest.importorskip("torch.distributed")
HERE = Path(__file__).parent


def outputs(root: Path, path: Path, n: int) -> Path:
    with open(path, "w") as f:
        for split in ("a", "b"):
            for i in range(n):
                text = "purple" if i % 4 == 0 else oracle_text(f"toy/{split}/{i}", root)
                f.write(json.dumps({"task": "toy", "split": split, "id": str(i), "text": text}) + "\n")
    return path


def comparable(run_dir: Path):
    lines = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    for ln in lines:
        ln.pop("cached")
    rec = json.loads((run_dir / "results.json").read_text())
    for t in rec["tasks"].values():
        t.pop("seconds")
    return lines, rec["tasks"], rec["configs"], rec["n-samples"]


def test_two_ranks_equal_one_process(tmp_path):
    n = 37  # odd, so the shares differ in size
    root = make_toy_data(tmp_path / "data", n=n)
    out = outputs(root, tmp_path / "o.jsonl", n)
    args = ["--tasks", "toy", "--split", "a+b", "--model", "scripted", "--model-args", f"outputs={out},delay=0.01",
            "--data-root", str(root), "--batch-size", "4", "--bootstrap", "200"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    single = subprocess.run([sys.executable, str(HERE / "toy_cli.py"), *args, "--output-path", str(tmp_path / "one"),
                             "--cache-dir", str(tmp_path / "c1")], capture_output=True, text=True, env=env, timeout=120)
    assert single.returncode == 0, single.stderr
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                            str(HERE / "toy_cli.py"), *args, "--output-path", str(tmp_path / "two"),
                            "--cache-dir", str(tmp_path / "c2")], capture_output=True, text=True, env=env, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert comparable(tmp_path / "two") == comparable(tmp_path / "one")
    rec = json.loads((tmp_path / "two" / "results.json").read_text())
    assert rec["counts"]["model_calls"] == 2 * n and rec["tasks"]["toy"]["n"] == 2 * n
    assert rec["world_size"] == 2 and json.loads((tmp_path / "one" / "results.json").read_text())["world_size"] == 1
    # one shared cache, every output once
    (db,) = (tmp_path / "c2").glob("*.sqlite")
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM responses").fetchone() == (2 * n, 2 * n)
    # progress and the table come from rank 0 only
    assert multi.stderr.count("(rank 0's share of 2)") >= 1 and "rank 1's share" not in multi.stderr
    assert multi.stdout.count("accuracy") == 1
    # re-run under torchrun: everything from the cache
    again = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                            str(HERE / "toy_cli.py"), *args, "--output-path", str(tmp_path / "three"),
                            "--cache-dir", str(tmp_path / "c2")], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0
    rec = json.loads((tmp_path / "three" / "results.json").read_text())
    assert rec["counts"]["model_calls"] == 0 and rec["counts"]["cache_hits"] == 2 * n

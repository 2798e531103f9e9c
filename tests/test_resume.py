"""Crash safety: a run killed with SIGKILL mid-way and started again ends with exactly the samples and
metrics of an uninterrupted run — none lost, none duplicated — and a finished run re-run makes zero
model calls."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from toy import make_toy_data

HERE = Path(__file__).parent


def script(root: Path, path: Path, n: int) -> Path:
    rows = json.loads((root / "toy" / "questions_a.json").read_text())
    with open(path, "w") as f:
        for r in rows[:n]:
            text = r["answer"] if r["id"] % 3 else "purple"
            f.write(json.dumps({"id": str(r["id"]), "text": text}) + "\n")
    return path


def cli(args: list[str], **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, str(HERE / "toy_cli.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


def cached_rows(cache_dir: Path) -> int:
    files = list(cache_dir.glob("*.sqlite"))
    if not files:
        return 0
    try:
        with sqlite3.connect(files[0], timeout=1) as c:
            return c.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def comparable(run_dir: Path) -> tuple[list[dict], dict]:
    lines = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    for ln in lines:
        ln.pop("cached")
    rec = json.loads((run_dir / "results.json").read_text())
    for t in rec["tasks"].values():
        t.pop("seconds")  # wall time differs, everything else must not
    return lines, rec["tasks"]


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    n = 120
    root = make_toy_data(tmp_path / "data", n=n, splits=("a",))
    outputs = script(root, tmp_path / "out.jsonl", n)
    common = ["--tasks", "toy", "--model", "scripted", "--data-root", str(root), "--batch-size", "4",
              "--bootstrap", "200"]
    slow = f"outputs={outputs},delay=0.03"

    ref = cli([*common, "--model-args", f"outputs={outputs}", "--cache-dir", str(tmp_path / "c0"),
               "--output-path", str(tmp_path / "ref")])
    assert ref.wait(120) == 0, ref.stderr.read()

    cache = tmp_path / "c1"
    p = cli([*common, "--model-args", slow, "--cache-dir", str(cache), "--output-path", str(tmp_path / "run")])
    deadline = time.monotonic() + 60
    while cached_rows(cache) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    done = cached_rows(cache)
    assert 0 < done < n, f"kill landed outside the run ({done} cached)"
    assert not (tmp_path / "run" / "results.json").exists()

    p = cli([*common, "--model-args", slow, "--cache-dir", str(cache), "--output-path", str(tmp_path / "run")])
    assert p.wait(120) == 0, p.stderr.read()
    rec = json.loads((tmp_path / "run" / "results.json").read_text())
    assert rec["counts"]["cache_hits"] == done and rec["counts"]["model_calls"] == n - done

    assert comparable(tmp_path / "run") == comparable(tmp_path / "ref")
    assert cached_rows(cache) == n  # nothing duplicated

    p = cli([*common, "--model-args", slow, "--cache-dir", str(cache), "--output-path", str(tmp_path / "again")])
    assert p.wait(120) == 0
    rec = json.loads((tmp_path / "again" / "results.json").read_text())
    assert rec["counts"]["model_calls"] == 0 and rec["counts"]["cache_hits"] == n

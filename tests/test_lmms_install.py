"""The lmms-eval install recipes of docs/lmms-eval.md do what they say.

- The GPU command's extra installs lmms-eval itself, at the version the bridge is tested with.
- The separate-venv package list is the `lmms-minimal` extra, and that extra (with what pip installs for
  it) covers every third-party module lmms-eval 0.7.3 imports for `lmms-eval tasks`, for its own
  `--model openai` and, beside molmo-eval, for `--model molmo_reference`: checked by running those code
  paths in a subprocess and mapping the imported modules to their distributions.
- `pip check` complains about lmms-eval's own unused dependencies only, as the docs say.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from molmo_eval.core.compat import tomllib

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "lmms-eval.md").read_text(encoding="utf-8")
EXTRAS = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def req_name(spec: str) -> str:
    return norm(re.split(r"[<>=!~;\[ ]", spec.strip().strip("'\""), maxsplit=1)[0])


def install_section_commands() -> list[list[str]]:
    """Every `pip install` line of the Install section's code blocks, as argument lists."""
    section = DOC.split("## Install", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    lines = [ln.split("#", 1)[0].strip() for b in blocks for ln in b.splitlines()]
    return [shlex.split(ln)[2:] for ln in lines if ln.startswith("pip install")]


def test_the_gpu_install_installs_lmms_eval_at_the_tested_version():
    first = install_section_commands()[0]
    (target,) = first
    extra = re.fullmatch(r"molmo-eval\[([\w-]+)\]", target)
    assert extra, f"the first install command is {first}, expected pip install 'molmo-eval[EXTRA]'"
    pins = [r for r in EXTRAS[extra.group(1)] if req_name(r) == "lmms-eval"]
    no_deps = {a for cmd in install_section_commands() if "--no-deps" in cmd and "--dry-run" not in cmd
               for a in cmd if a.startswith("lmms-eval==")}
    assert pins and {p.replace(" ", "") for p in pins} == no_deps == {"lmms-eval==0.7.3"}, (pins, no_deps)


def test_the_separate_venv_list_is_the_minimal_extra():
    listed = [cmd for cmd in install_section_commands() if cmd and not cmd[0].startswith(("-", "molmo-eval"))]
    assert len(listed) == 1, listed
    assert {req_name(a) for a in listed[0]} == {req_name(r) for r in EXTRAS["lmms-minimal"]}
    assert {"pillow", "python-dotenv"} <= {req_name(r) for r in EXTRAS["lmms-minimal"]}
    assert "molmo-eval[lmms-minimal]" in EXTRAS["test"]  # what CI installs is what the docs recommend


def closure(names: set[str]) -> set[str]:
    """The distributions pip installs for ``names``: them and their requirements, recursively (markers
    evaluated for this interpreter, extras not followed)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [norm(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in reqs:
            r = Requirement(text)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(norm(r.name))
    return seen


PROBE = r"""
import importlib.abc, importlib.metadata as md, json, os, re, runpy, sys

mode, allowed = sys.argv[1], set(json.loads(sys.argv[2]))
os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
owners = md.packages_distributions()


class OnlyTheRecipe(importlib.abc.MetaPathFinder):
    # a virtual environment holding only what the recipe installs: other distributions do not import
    def find_spec(self, name, path, target=None):
        top = name.split(".")[0]
        dists = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(top, ())}
        if dists and not dists & allowed:
            raise ModuleNotFoundError(f"No module named {top!r} (not installed by the recipe)", name=top)
        return None


sys.meta_path.insert(0, OnlyTheRecipe())  # (without molmo-eval, lmms-eval skips its entry point with a warning)
if mode == "tasks":
    sys.argv = ["lmms-eval", "tasks", "list"]
    try:
        runpy.run_module("lmms_eval", run_name="__main__")
    except SystemExit as e:
        assert not e.code, e.code
else:
    from lmms_eval.models import get_model

    print(get_model(mode))
print("PROBE-OK")
"""


@pytest.mark.parametrize(("probe", "beside"), [("tasks", set()), ("openai", set()),
                                               ("molmo_reference", {"molmo-eval"})])
def test_the_minimal_extra_covers_what_lmms_eval_imports(probe, beside, tmp_path):
    """Runs the code path with every distribution the recipe does not install made unimportable, as in
    a fresh virtual environment holding the recipe alone (beside molmo-eval for molmo_reference)."""
    pytest.importorskip("lmms_eval")
    allowed = closure({req_name(r) for r in EXTRAS["lmms-minimal"]} | beside) | {"lmms-eval"}  # --no-deps
    r = subprocess.run([sys.executable, "-c", PROBE, probe, json.dumps(sorted(allowed))], capture_output=True,
                       text=True, timeout=600, cwd=tmp_path, env={**os.environ, "HF_HOME": str(tmp_path / "hf")})
    assert "PROBE-OK" in r.stdout, (r.stdout[-1500:], r.stderr[-3000:])
    if probe == "tasks":
        assert "gqa" in r.stdout + r.stderr  # it listed lmms-eval's tasks


def test_pip_check_lists_only_lmms_eval_requirements():
    pytest.importorskip("lmms_eval")
    r = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert all(ln.startswith("lmms-eval 0.7.3 requires ") for ln in lines), lines

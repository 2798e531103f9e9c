"""The package runs on every Python that pyproject.toml's ``requires-python`` admits (>= 3.10).

The suite itself runs on one interpreter, so this is a static check of the source: it parses with the
oldest grammar, and it uses no standard-library module or name that appeared after that version,
except through `molmo_eval.core.compat`. `.ci/run` also runs a short smoke of the CLI on the oldest
and the newest Python found on the machine.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from molmo_eval.core.compat import tomllib

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("molmo_eval", "tasks", "reference_model") for p in (ROOT / folder).rglob("*.py"))
COMPAT = ROOT / "molmo_eval" / "core" / "compat.py"

# What Python 3.11-3.13 added that code written on a newer Python reaches for: modules, and names
# looked up on standard modules (module -> names).
NEW_MODULES = {"tomllib", "wsgiref.types"}
NEW_NAMES = {
    "datetime": {"UTC"},
    "enum": {"StrEnum", "ReprEnum", "verify", "member", "nonmember", "global_enum", "EnumCheck"},
    "typing": {"Self", "LiteralString", "Never", "assert_never", "assert_type", "reveal_type",
               "dataclass_transform", "TypeVarTuple", "Unpack", "Required", "NotRequired", "override",
               "get_overloads", "clear_overloads", "TypeAliasType", "ReadOnly", "TypeIs", "NoDefault"},
    "asyncio": {"TaskGroup", "timeout", "timeout_at", "Runner", "Barrier", "BrokenBarrierError"},
    "hashlib": {"file_digest"},
    "contextlib": {"chdir"},
    "operator": {"call"},
    "math": {"exp2", "cbrt"},
    "itertools": {"batched"},
    "logging": {"getLevelNamesMapping"},
    "inspect": {"markcoroutinefunction"},
    "builtins": {"ExceptionGroup", "BaseExceptionGroup"},
}


def oldest_python() -> tuple[int, int]:
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    m = re.fullmatch(r">=\s*3\.(\d+)", spec.strip())
    assert m, f"requires-python {spec!r}: expected '>=3.N'"
    return 3, int(m.group(1))


def problems(path: Path, version: tuple[int, int]) -> list[str]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text, filename=str(path), feature_version=version)
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    aliases: dict[str, str] = {}  # local name -> standard module
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in NEW_MODULES:
                    out.append(f"{where}:{node.lineno}: import {a.name}")
                aliases[a.asname or a.name.split(".")[0]] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module in NEW_MODULES:
                out.append(f"{where}:{node.lineno}: from {node.module} import ...")
            for a in node.names:
                if a.name in NEW_NAMES.get(node.module, ()):
                    out.append(f"{where}:{node.lineno}: from {node.module} import {a.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            module = aliases.get(node.value.id)
            if module is not None and node.attr in NEW_NAMES.get(module, ()):
                out.append(f"{where}:{node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in NEW_NAMES["builtins"]:
            out.append(f"{where}:{node.lineno}: {node.id}")
    return out


def test_requires_python_is_the_oldest_grammar_checked():
    assert oldest_python() == (3, 10)


@pytest.mark.parametrize("path", [p for p in SOURCES if p != COMPAT], ids=lambda p: str(p.relative_to(ROOT)))
def test_source_uses_nothing_newer_than_requires_python(path):
    assert problems(path, oldest_python()) == []


def test_the_checker_catches_what_python_3_10_lacks(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import tomllib\nimport datetime as dt\nfrom typing import Self\nx = dt.UTC\n"
                   "def f():\n    raise ExceptionGroup('x', [])\n")
    found = problems(bad, (3, 10))
    assert [f.split(": ", 1)[1] for f in found] == ["import tomllib", "from typing import Self", "dt.UTC",
                                                   "ExceptionGroup"]
    newer = tmp_path / "newer.py"
    newer.write_text("try:\n    pass\nexcept* ValueError:\n    pass\n")
    with pytest.raises(SyntaxError):
        problems(newer, (3, 10))


def test_tomli_is_a_dependency_where_tomllib_is_missing():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert any(re.fullmatch(r"tomli\b.*;\s*python_version\s*<\s*['\"]3\.11['\"]", d) for d in deps), deps
    assert "import tomli as tomllib" in COMPAT.read_text(encoding="utf-8")

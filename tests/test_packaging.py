"""The distribution lists every package of the source tree.

Tests run against an editable install, which finds a subpackage whether or not pyproject.toml names
it; a wheel (``pip install .``) ships only the listed ones, so a room missing from the list would
break every non-editable install while the suite stays green.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_in_the_distribution():
    from molmo_eval.core.compat import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    found = set()
    for name, folder in setuptools["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found.add(".".join((name, *rel)))
    assert found == set(setuptools["packages"])

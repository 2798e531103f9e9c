"""Start-up as a user has it after ``pip install``, for benches that time whole processes.

pip compiles a package's modules to bytecode when it installs them, so a user's start-up reads them
compiled. Where PYTHONDONTWRITEBYTECODE is set (containers, CI) every start-up would compile every
imported module's source again, a cost of the environment that falls mostly on the side that
imports more. `as_installed` drops that setting for the processes a bench starts, and `compiled`
compiles the code they import once, up front, for both sides of a ratio alike.
"""

from __future__ import annotations

import os
from pathlib import Path


def as_installed() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def compiled(*folders: Path) -> None:
    """Bytecode of every module under ``folders`` (the source tree and any folder of the anchor's)."""
    import compileall

    for folder in folders:
        if folder.is_dir():
            compileall.compile_dir(str(folder), quiet=2)

"""Errors meant for users.

The CLI prints any `MolmoEvalError` as one line (no traceback unless ``--debug``) and exits
with the error's ``exit_code``. Programming mistakes stay plain exceptions and asserts.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MolmoEvalError(Exception):
    """Base of every error that is the user's to fix (configuration, input files, plugins)."""

    exit_code = 2


class ConfigError(MolmoEvalError):
    """A flag, model argument or TOML field is invalid. May carry several problems at once."""

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class DataError(MolmoEvalError):
    """An input file is missing or malformed. The message names the file, record and field."""

    def __init__(self, message: str, *, path: object = None, record: object = None,
                 field: str | None = None, expected: str | None = None):
        parts = []
        if path is not None:
            parts.append(str(path))
        if record is not None:
            parts.append(f"record {record}")
        if field is not None:
            parts.append(f"field {field!r}")
        where = ": ".join([", ".join(parts)]) if parts else ""
        text = f"{where}: {message}" if where else message
        if expected:
            text += f" (expected {expected})"
        self.path, self.record, self.field = path, record, field
        super().__init__(text)


class UnknownName(MolmoEvalError):
    """A task, model, variant or split name that is not registered; suggests the closest names."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(known) if known else "none installed"
        self.kind, self.name, self.suggestions = kind, name, close
        super().__init__(f"unknown {kind} {name!r}{hint} (known: {listing})")


class PluginConflict(MolmoEvalError):
    """Two plugins claim the same name; neither silently wins."""


# top-level module -> what `pip install` takes to bring it back: an extra of molmo-eval, or the
# distribution of a core dependency (missing only from a broken or --no-deps install)
INSTALL = {
    "httpx": "molmo-eval[openai]", "ray": "molmo-eval[ray]", "transformers": "molmo-eval[hf]",
    "openpyxl": "molmo-eval[xlsx]", "lmms_eval": "molmo-eval[lmms]", "torch": "molmo-eval[model]",
    "matplotlib": "matplotlib", "numpy": "numpy", "scipy": "scipy", "PIL": "pillow", "rich": "rich",
    "pycocotools": "pycocotools", "safetensors": "safetensors", "tomli": "tomli", "yaml": "pyyaml",
    "accelerate": "accelerate", "loguru": "loguru", "openai": "openai",
}


class MissingDependency(MolmoEvalError):
    """A dependency is not installed; the message carries the pip line that fixes it. ``extra`` names
    molmo-eval's extra; None means a core dependency (installed with molmo-eval, unless removed)."""

    def __init__(self, module: str, extra: str | None, purpose: str):
        self.module, self.extra = module, extra
        target = f"molmo-eval[{extra}]" if extra else INSTALL.get(module, module)
        super().__init__(
            f"{purpose} needs the Python package {module!r}, which is not installed; "
            f"install it with: pip install '{target}'"
        )

    @classmethod
    def of(cls, error: ModuleNotFoundError, purpose: str) -> MissingDependency:
        """The one-line error for an import that failed (what the CLI prints instead of a traceback)."""
        module = (error.name or str(error)).split(".")[0]
        target = INSTALL.get(module, module)
        extra = target[len("molmo-eval["):-1] if target.startswith("molmo-eval[") else None
        return cls(module, extra, purpose)

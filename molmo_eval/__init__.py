"""molmo-eval: an evaluation harness for Molmo-style vision-language models.

The public Python API is `evaluate` (the CLI is a thin shell over it). Imports are lazy so that
``import molmo_eval`` and ``molmo-eval --help`` stay fast.
"""

from __future__ import annotations

from typing import Any

from molmo_eval.core.version import __version__


def evaluate(*args: Any, **kwargs: Any) -> Any:
    """Evaluate a model on tasks and return the `RunRecord`; see `molmo_eval.run.runner.evaluate`."""
    from molmo_eval.run.runner import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = ["__version__", "evaluate"]

"""molmo-eval: an evaluation harness for Molmo-style vision-language models.

The public Python API is `evaluate` (the CLI is a thin shell over it). Imports are lazy so that
``import molmo_eval`` and ``molmo-eval --help`` stay fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def evaluate(*args: Any, **kwargs: Any) -> Any:
    """Evaluate a model on tasks and return the `RunRecord`; see `molmo_eval.runner.evaluate`."""
    from molmo_eval.runner import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


__all__ = ["__version__", "evaluate"]

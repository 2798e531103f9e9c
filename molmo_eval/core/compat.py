"""What differs between the Python versions the package supports (``requires-python >= 3.10``).

``tomllib`` is in the standard library from Python 3.11; on 3.10 the same parser is the ``tomli``
package (a dependency there, see pyproject.toml). Import it from here: ``from molmo_eval.core.compat
import tomllib``.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the CI smoke on the oldest Python
    import tomli as tomllib

__all__ = ["tomllib"]

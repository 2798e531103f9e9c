"""Safe reading of benchmark files (DESIGN §9); images are `molmo_eval.data.images`.

Loaders use these helpers so that every problem becomes a `DataError` naming the file, the record
and the field; image paths from annotation files stay inside the data root (`confined`); pickles go
through a restricted unpickler that admits only plain containers and scalars.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import DataError


def file_digest(path: Path | str, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"missing {what}", path=path, expected=f"a file named {path.name!r}")
    return path


def read_json(path: Path, what: str = "annotation file") -> Any:
    require_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})", path=path) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason})", path=path) from None


def iter_jsonl(path: Path, what: str = "JSON lines file") -> Iterator[tuple[int, Any]]:
    """Yield (line number, record) for each non-blank line."""
    require_file(path, what)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"not valid JSON ({e.msg})", path=path, record=f"at line {lineno}") from None


def field(record: Any, name: str, *, path: Path, index: object, types: type | tuple[type, ...] | None = None,
          expected: str | None = None) -> Any:
    """``record[name]`` or a DataError naming file, record and field (and the expected type)."""
    if not isinstance(record, Mapping):
        raise DataError("record is not an object", path=path, record=index, expected="a JSON object")
    if name not in record:
        raise DataError("missing field", path=path, record=index, field=name,
                        expected=expected or f"fields {sorted(record)[:8]} to include {name!r}")
    value = record[name]
    if types is not None:
        allowed = types if isinstance(types, tuple) else (types,)
        # bool is an int subclass in Python, but a JSON true is never a valid id or count
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            want = expected or " or ".join(t.__name__ for t in allowed)
            raise DataError(f"has type {type(value).__name__}", path=path, record=index, field=name,
                            expected=want)
    return value


def confined(root: Path, relative: str, *, path: Path | None = None, record: object = None) -> Path:
    """Join an image path from an annotation file to ``root``, refusing absolute paths and ``..``
    that lead outside it.

    The check is lexical: it stops a hostile annotation file from naming ``../../etc/passwd``,
    while symbolic links that the user placed inside the data root (an images folder linked to
    a shared COCO copy, say) keep working."""
    rel = os.path.normpath(relative)
    if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep):
        raise DataError(f"image path {relative!r} escapes the data root {str(root)!r}",
                        path=path, record=record, field="image")
    return Path(os.path.join(os.path.abspath(root), rel))


# --- pickles --------------------------------------------------------------------------------

class _RestrictedUnpickler(pickle.Unpickler):
    """Admits only plain containers and scalars: any global (class, function) is refused."""

    _ALLOWED = {("builtins", "set"), ("builtins", "frozenset"),
                ("__builtin__", "set"), ("__builtin__", "frozenset")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:  # sets are plain data; py2 pickles spell them __builtin__
            import builtins
            return getattr(builtins, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def safe_pickle_load(path: Path) -> Any:
    """Load a pickle of plain data (dict, list, tuple, str, bytes, numbers, None, bool, set)."""
    require_file(path, "pickle file")
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise DataError(f"refused to unpickle: {e}; only plain containers and scalars are accepted",
                        path=path) from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise DataError(f"malformed pickle ({type(e).__name__}: {e})", path=path) from None

"""Safe reading of benchmark files (DESIGN §9); images are `molmo_eval.data.images`.

Loaders use these helpers so that every problem becomes a `DataError` naming the file, the record
and the field (typed fields: `molmo_eval.data.validate`); image paths from annotation files stay
inside the data root (`confined`); only regular files are opened, and never in a way that blocks (a
FIFO or a device at a data path is refused, `open_regular`); pickles go through a restricted
unpickler that admits only plain containers and scalars and whose memory is bounded by the file's
size (`safe_pickle_load`).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from molmo_eval.core import jsonio
from molmo_eval.core.errors import DataError
from molmo_eval.core.heap import gc_paused

MAX_PICKLE_BYTES = 512 * 1024 * 1024  # refer's largest refs(*).p is a few tens of MB


def file_digest(path: Path | str, algo: str = "sha256") -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        if path.exists() or path.is_symlink():
            raise DataError(f"{what} is not a regular file", path=path, expected="a regular file")
        raise DataError(f"missing {what}", path=path, expected=f"a file named {path.name!r}")
    return path


def open_regular(path: Path | str, what: str = "file") -> BinaryIO:
    """Open a regular file for reading, refusing anything else (a FIFO, a device, a folder) without
    blocking: the open is non-blocking and the type is checked on the open descriptor."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise DataError(f"missing {what}", path=path) from None
    except OSError as e:
        raise DataError(f"cannot open {what} ({e.strerror or e})", path=path) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DataError(f"{what} is not a regular file", path=path, expected="a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path | str, what: str = "file", limit: int | None = None) -> bytes:
    """The bytes of a regular file (`open_regular`), refused beyond ``limit`` bytes."""
    with open_regular(path, what) as f:
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise DataError(f"{what} is larger than the limit", path=path, expected=f"<= {limit} bytes")
    return data


def read_json(path: Path, what: str = "annotation file", *, unique_keys: bool = False) -> Any:
    """A JSON file; ``unique_keys`` refuses an object that names a key twice (by default the last
    one silently wins, as in `json.load`)."""
    require_file(path, what)
    data = read_bytes(path, what)
    if not unique_keys:
        return jsonio.loads(data, path=path)
    try:
        return jsonio.loads_with(data, path=path, object_pairs_hook=pairs_unique)
    except DuplicateKey as e:
        raise DataError(f"key {e.key!r} occurs twice in one object", path=path, record=f"key {e.key}",
                        expected="each key once (a second entry would silently replace the first)") from None


def read_json_typed(path: Path, what: str, schema: Any) -> Any | None:
    """The fast path for large official files: the JSON file decoded straight into ``schema`` (msgspec
    types; struct fields name what a loader reads, so the rest of each record is never built), or None
    where msgspec is not installed, ``schema`` is None or the file does not have that shape. A caller
    that gets None reads the file with `read_json` and its own checks, which say what is wrong."""
    decode = jsonio.fast_decoder()
    if decode is None or schema is None:
        return None
    require_file(path, what)
    data = read_bytes(path, what)
    with gc_paused():
        try:
            return decode(data, type=schema)
        except Exception:  # another shape, or not JSON at all: the generic reader reports it
            return None


def pairs_unique(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for `json.load` that refuses an object with a key twice (a JSON object
    keyed by question id would otherwise keep only the last of two questions)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DuplicateKey(dup)
    return out


class DuplicateKey(ValueError):
    """A JSON object names a key twice."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def iter_jsonl(path: Path, what: str = "JSON lines file") -> Iterator[tuple[int, Any]]:
    """Yield (line number, record) for each non-blank line."""
    require_file(path, what)
    with open_regular(path, what) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            yield lineno, jsonio.loads(line, path=path, record=f"at line {lineno}")


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

class _Refused(pickle.UnpicklingError):
    """A pickle names a global (class, function): never loaded."""


class _ExactReader(io.BytesIO):
    """An in-memory pickle whose reads return exactly what was asked or fail: a declared length
    beyond the data is an error, never a silently short value."""

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        if n is not None and n >= 0 and len(data) < n:
            raise pickle.UnpicklingError(f"pickle data was truncated (a length of {n} bytes is declared, "
                                         f"{len(data)} remain)")
        return data


class _RestrictedUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """Admits only plain containers and scalars: any global (class, function) is refused.

    Python's own (pure-Python) unpickler, not the C one: the C unpickler allocates what a pickle
    declares before reading it - a memo table sized by a LONG_BINPUT index (2**32 entries, filled,
    so ~64 GB are touched) or a 2**40-byte BINBYTES8 buffer - while this one keeps the memo in a dict
    and reads counted data from memory through `_ExactReader`. Memory is thus bounded by the size of
    the file; the price is speed (a few seconds for refer's full refs(*).p files)."""

    _ALLOWED = {("builtins", "set"), ("builtins", "frozenset"),
                ("__builtin__", "set"), ("__builtin__", "frozenset")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:  # sets are plain data; py2 pickles spell them __builtin__
            import builtins
            return getattr(builtins, name)
        raise _Refused(f"global {module}.{name} is not allowed")


def safe_pickle_load(path: Path) -> Any:
    """Load a pickle of plain data (dict, list, tuple, str, bytes, numbers, None, bool, set), with
    memory bounded by the file's size (at most `MAX_PICKLE_BYTES`, see `_RestrictedUnpickler`)."""
    require_file(path, "pickle file")
    data = read_bytes(path, "pickle file", MAX_PICKLE_BYTES)
    try:
        return _RestrictedUnpickler(_ExactReader(data), encoding="latin1").load()
    except _Refused as e:
        raise DataError(f"refused to unpickle: {e}; only plain containers and scalars are accepted",
                        path=path) from None
    except MemoryError:
        raise DataError("malformed pickle (it declares more data than memory can hold)", path=path) from None
    except RecursionError:
        raise DataError("malformed pickle (nested too deeply)", path=path) from None
    except Exception as e:  # UnpicklingError, EOFError, ValueError, struct.error, ...: a corrupt stream
        raise DataError(f"malformed pickle ({type(e).__name__}: {str(e)[:200]})", path=path) from None

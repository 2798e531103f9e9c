"""JSON text in and out for every file the harness writes or reads back (records, samples, caches).

Writing is lossless for any Python text: a model may return a lone surrogate (``"yes\\ud800"``, from
a tokenizer that split a character or an HTTP body holding ``"\\ud800"``), which UTF-8 cannot encode.
`dumps` writes such characters as JSON escapes, exactly as ``ensure_ascii=True`` would, and leaves
every other character as it is, so files stay readable UTF-8 and `json.loads` returns the original
text. NaN and infinities, which JSON lacks, become null unless ``allow_nan`` keeps them (the response
cache keeps them, so a cached output is the output).

Reading turns every way a document can fail to parse — bad syntax, bad UTF-8, an integer beyond
Python's digit limit, nesting deeper than the recursion limit — into a `DataError` naming the file.
It goes through msgspec when that is installed (a declared dependency; 3-5x faster than the standard
library on the large official annotation files) and falls back to `json` when it is not, or when
msgspec refuses a document: msgspec refuses what the standard library would read differently
(``NaN``, ``1e400``, lone surrogate escapes, a byte-order mark, UTF-16), and wherever it accepts a
document it returns exactly what `json.loads` returns (tested), so the standard library's verdict
stands on everything else. The cyclic garbage collector is paused while a document is built
(`molmo_eval.core.heap`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from molmo_eval.core.errors import DataError
from molmo_eval.core.heap import gc_paused

_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(text: str) -> str:
    """``text`` (JSON) with lone surrogates written as ``\\uXXXX`` escapes."""
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def clean(obj: Any) -> Any:
    """JSON-safe copy: NaN/inf -> null, tuples -> lists, numpy scalars and arrays -> Python."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return clean(obj.item())
    if hasattr(obj, "tolist"):
        return clean(obj.tolist())
    return obj


def _default(obj: Any) -> Any:
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any, *, indent: int | None = None, allow_nan: bool = False) -> str:
    """JSON text of ``obj`` that any UTF-8 file can hold (one line unless ``indent``)."""
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=allow_nan, default=_default, indent=indent)
    except ValueError:  # a NaN somewhere: take the slow, cleaning path
        text = json.dumps(clean(obj), ensure_ascii=False, allow_nan=False, indent=indent)
    return escape_surrogates(text)


@cache
def fast_decoder() -> Callable[..., Any] | None:
    """msgspec's JSON decoder, or None where msgspec is not installed (the standard library then reads)."""
    try:
        import msgspec
    except ImportError:
        return None
    return msgspec.json.decode  # type: ignore[no-any-return]


def loads(text: str | bytes, *, path: object = None, record: object = None) -> Any:
    """Parse JSON text; any failure is a DataError naming ``path`` (and ``record``, e.g. a line)."""
    decode = fast_decoder()
    with gc_paused():
        if decode is not None:
            try:
                return decode(text)
            except Exception:  # refused by msgspec: the standard library reads it, or says what is wrong
                pass
        return loads_with(text, path=path, record=record)


def loads_with(text: str | bytes, *, path: object = None, record: object = None, **kw: Any) -> Any:
    """`loads` with `json.loads` keywords (``object_pairs_hook``...); a ValueError the hook raises on
    purpose (a subclass) passes through for the caller to report."""
    try:
        return json.loads(text, **kw)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})", path=path,
                        record=record) from None
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text ({e.reason})", path=path, record=record) from None
    except ValueError as e:  # e.g. an integer literal longer than Python's int-string limit
        if type(e) is not ValueError and kw:
            raise  # the hook's own error
        raise DataError(f"not readable JSON ({str(e)[:200]})", path=path, record=record) from None
    except RecursionError:
        raise DataError("not readable JSON (nested too deeply)", path=path, record=record) from None

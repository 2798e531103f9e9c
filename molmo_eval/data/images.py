"""Safe reading of images (DESIGN §9): bytes from a path, raw bytes or base64, a digest and the
size, RGB pixels when asked. Files and base64 strings are size-limited before they are read, and
the pixel count is checked from the header before decoding, so a decompression bomb is refused
without allocating its pixels. Only regular files are opened, without blocking: a FIFO or a device at
an image path is a per-sample "not a regular file" error, never a hung run.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import os
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from molmo_eval.core.errors import DataError
from molmo_eval.core.types import Image, ImageRef
from molmo_eval.data.files import open_regular, read_bytes

MAX_IMAGE_PIXELS = 64_000_000  # ~8k x 8k; larger images are refused as decompression bombs
MAX_IMAGE_BYTES = 64 * 1024 * 1024


def image_bytes(ref: ImageRef) -> bytes:
    if ref.data is not None:
        data = ref.data
    elif ref.b64 is not None:
        if len(ref.b64) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            raise DataError("base64 image is larger than the limit", expected=f"<= {MAX_IMAGE_BYTES} bytes")
        try:
            data = base64.b64decode(ref.b64, validate=False)
        except (binascii.Error, ValueError) as e:
            raise DataError(f"invalid base64 image ({e})") from None
    else:
        assert ref.path is not None
        p = Path(ref.path)
        if not p.exists() and not p.is_symlink():
            raise DataError("image file not found", path=p)
        data = read_bytes(p, "image file", MAX_IMAGE_BYTES)
    return data


def load_image(ref: ImageRef, decode: bool) -> Image:
    """Read an image's bytes, digest them and read its size; decode RGB pixels if asked.

    Sizes are checked from the header before any decoding, so a decompression bomb is refused
    without allocating its pixels. The last 64 image files loaded are served from memory while their
    size and modification time are unchanged: benchmarks ask several questions about one image."""
    if ref.path is None:
        return _load_image(ref, decode)
    try:
        st = os.stat(ref.path)
    except OSError:
        return _load_image(ref, decode)  # the loader says what is wrong
    return _load_image_file(ref.path, st.st_size, st.st_mtime_ns, decode)


@functools.lru_cache(maxsize=64)  # thread-safe; size and mtime are part of the key, so edits re-read
def _load_image_file(path: str, size: int, mtime_ns: int, decode: bool) -> Image:
    return _load_image(ImageRef(path=path), decode)


def _load_image(ref: ImageRef, decode: bool) -> Image:
    from PIL import Image as PILImage

    data = image_bytes(ref)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise DataError(f"image of {w}x{h} pixels exceeds the decompression limit",
                                path=ref.describe(), expected=f"<= {MAX_IMAGE_PIXELS} pixels")
    except DataError:
        raise
    except Exception as e:  # PIL raises many types for corrupt files
        raise DataError(f"unreadable image ({type(e).__name__}: {e})", path=ref.describe()) from None
    return Image(digest=digest, size=(w, h), data=data, pixels=_decode(data, ref.describe()) if decode else None)


def with_pixels(image: Image) -> Image:
    """``image`` with its RGB pixels decoded (from the bytes `load_image` read and checked). The last
    64 images decoded are remembered by digest: a model asked about one image several times decodes
    it once. The runner decodes only for requests the response cache does not answer."""
    if image.pixels is not None:
        return image
    with _DECODED_LOCK:
        pixels = _DECODED.get(image.digest)
        if pixels is not None:
            _DECODED.move_to_end(image.digest)
    if pixels is None:
        pixels = _decode(image.data, f"image {image.digest}")
        with _DECODED_LOCK:
            _DECODED[image.digest] = pixels
            while len(_DECODED) > 64:
                _DECODED.popitem(last=False)
    return replace(image, pixels=pixels)


_DECODED: OrderedDict[str, Any] = OrderedDict()
_DECODED_LOCK = threading.Lock()


def _decode(data: bytes, where: str) -> Any:
    """RGB pixels of an image whose size `_load_image` checked; read-only (samples of an image share them)."""
    import numpy as np
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            pixels = np.asarray(im.convert("RGB"))
    except Exception as e:  # PIL raises many types for corrupt files
        raise DataError(f"unreadable image ({type(e).__name__}: {e})", path=where) from None
    pixels.setflags(write=False)
    return pixels


def image_size(ref: ImageRef) -> tuple[int, int]:
    """(W, H) from the image header only."""
    from PIL import Image as PILImage

    try:
        if ref.path is not None:
            with open_regular(ref.path, "image file") as f, PILImage.open(f) as im:
                return im.size
        with PILImage.open(io.BytesIO(image_bytes(ref))) as im:
            return im.size
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"unreadable image ({type(e).__name__}: {e})", path=ref.describe()) from None

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
from pathlib import Path

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
    import numpy as np
    from PIL import Image as PILImage

    data = image_bytes(ref)
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    try:
        with PILImage.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise DataError(f"image of {w}x{h} pixels exceeds the decompression limit",
                                path=ref.describe(), expected=f"<= {MAX_IMAGE_PIXELS} pixels")
            pixels = np.asarray(im.convert("RGB")) if decode else None
            if pixels is not None:
                pixels.setflags(write=False)  # shared between the samples of one image
    except DataError:
        raise
    except Exception as e:  # PIL raises many types for corrupt files
        raise DataError(f"unreadable image ({type(e).__name__}: {e})", path=ref.describe()) from None
    return Image(digest=digest, size=(w, h), data=data, pixels=pixels)


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

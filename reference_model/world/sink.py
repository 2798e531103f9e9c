"""Where a benchmark writer puts its files: `Sink` writes one benchmark's folder and digests what
makes the world the world (raw pixels before JPEG encoding, annotation files). The writers (`vqa`,
`gqa`, `refer`, `pope`, `mmbench`, `pointqa`) and `world.write_world` both import it from here.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import formats


class Sink:
    """Writes one benchmark's files under ``root/<folder>`` and keeps its digests."""

    def __init__(self, root: Path, folder: str):
        self.dir = root / folder
        self.folder = folder
        self.pixels = hashlib.sha256()
        self.annotations: dict[str, str] = {}
        self.n_images = 0

    def image(self, rel: str, image: np.ndarray) -> bytes:
        data = formats.jpeg_bytes(image)
        formats.write_bytes(self.dir / rel, data)
        formats.pixel_digest_update(self.pixels, image)
        self.n_images += 1
        return data

    def encode_image(self, image: np.ndarray) -> bytes:
        """An image kept inside an annotation file (MMBench's base64 column)."""
        formats.pixel_digest_update(self.pixels, image)
        self.n_images += 1
        return formats.jpeg_bytes(image)

    def annotation(self, rel: str, data: bytes, canonical: bytes | None = None) -> None:
        formats.write_bytes(self.dir / rel, data)
        self.annotations[rel] = formats.sha256_bytes(canonical if canonical is not None else data)

    def json(self, rel: str, obj: Any) -> None:
        self.annotation(rel, formats.dump_json(obj).encode("utf-8"))

    def jsonl(self, rel: str, rows: Iterable[Any]) -> None:
        self.annotation(rel, "".join(formats.dump_json(r) + "\n" for r in rows).encode("utf-8"))

    def pickle(self, rel: str, obj: Any) -> None:
        self.annotation(rel, pickle.dumps(obj, protocol=2))

    def digests(self) -> dict[str, Any]:
        return {"pixels": self.pixels.hexdigest(), "images": self.n_images,
                "annotations": dict(sorted(self.annotations.items()))}

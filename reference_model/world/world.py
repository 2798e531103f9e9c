"""Writes the whole evaluation world: every benchmark split in its official format, at a size.

    write_world(root, size, seed) ──► root/vqav2, textvqa, gqa, refer, pope, mmbench, pointqa, world.json

Each benchmark module (`vqa`, `gqa`, `refer`, `pope`, `mmbench`, `pointqa`) writes through a `Sink`
(module `sink`, below this one and the writers), which also digests what makes the world the world:
the raw pixels of every image before JPEG encoding and the annotation files (with MMBench's base64
images replaced by a placeholder). Those digests do not depend on the libjpeg version, so a committed
reference can check that two machines generated identical data (`world.json` → ``"digests"``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import formats, gqa, mmbench, pointqa, pope, refer, vqa
from .sink import Sink

WORLD_VERSION = 1

Progress = Callable[[str, int, int], None]  # (benchmark, done, total)


@dataclass(frozen=True)
class WorldSize:
    """How many images (or questions) each benchmark gets."""

    vqav2: int  # images, 3 questions each
    textvqa: int  # images, 1-2 questions each
    gqa: int  # images, about 4 questions each
    refer: int  # images per RefCOCO split (refcoco and refcoco+ share them; refcocog gets as many)
    pope: int  # images, 6 questions each per split
    mmbench: int  # base questions (circular copies added)
    pointqa: int  # pointing questions; LocalQA and LookTwiceQA get half as many each


SIZES: dict[str, WorldSize] = {
    "mini": WorldSize(vqav2=100, textvqa=130, gqa=60, refer=30, pope=40, mmbench=120, pointqa=200),
    "small": WorldSize(vqav2=500, textvqa=650, gqa=400, refer=200, pope=250, mmbench=600, pointqa=1200),
    "full": WorldSize(vqav2=2500, textvqa=3250, gqa=2000, refer=1000, pope=500, mmbench=3000, pointqa=6000),
}

BENCHMARKS = ("vqav2", "textvqa", "gqa", "refer", "pope", "mmbench", "pointqa")


def write_world(root: Path | str, size: str | WorldSize = "mini", seed: int = 0, *,
                benchmarks: Iterable[str] | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Write the chosen benchmarks (default: all) of the world ``(size, seed)`` under ``root`` and
    a ``world.json`` describing it; returns that description. ``size`` is a name in `SIZES` or a
    `WorldSize` (tests use tiny ones)."""
    writers = {"vqav2": vqa.write_vqav2, "textvqa": vqa.write_textvqa, "gqa": gqa.write_gqa,
               "refer": refer.write_refer, "pope": pope.write_pope, "mmbench": mmbench.write_mmbench,
               "pointqa": pointqa.write_pointqa}
    chosen = list(benchmarks) if benchmarks is not None else list(BENCHMARKS)
    unknown = [b for b in chosen if b not in writers]
    if unknown or (isinstance(size, str) and size not in SIZES):
        raise ValueError(f"unknown benchmark(s) {unknown} or size {size!r}; known: {list(writers)}, {list(SIZES)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sizes = SIZES[size] if isinstance(size, str) else size
    label = size if isinstance(size, str) else "custom"
    info: dict[str, Any] = {"world_version": WORLD_VERSION, "size": label, "seed": seed, "benchmarks": {}}
    for name in chosen:
        t0 = time.perf_counter()
        sink = Sink(root, name)
        counts = writers[name](sink, getattr(sizes, name), seed, _ticker(progress, name))
        info["benchmarks"][name] = {"samples": counts, "seconds": round(time.perf_counter() - t0, 3),
                                    "digests": sink.digests()}
    info["digest"] = world_digest(info)
    formats.write_json(root / "world.json", _without_timings(info))
    return info


def world_digest(info: dict[str, Any]) -> str:
    """One digest over every benchmark's pixel and annotation digests (timings excluded)."""
    h = hashlib.sha256()
    for name in sorted(info["benchmarks"]):
        h.update(name.encode())
        h.update(formats.dump_json(info["benchmarks"][name]["digests"]).encode())
    return h.hexdigest()


def _without_timings(info: dict[str, Any]) -> dict[str, Any]:
    out = dict(info)
    out["benchmarks"] = {k: {kk: vv for kk, vv in v.items() if kk != "seconds"} for k, v in info["benchmarks"].items()}
    return out


def _ticker(progress: Progress | None, name: str) -> Callable[[int, int], None]:
    if progress is None:
        return lambda done, total: None
    return lambda done, total: progress(name, done, total)

"""The embedded default data: the synthetic world's mini splits, generated on first use and verified.

`default_data_root()` is what the runner uses when no ``--data-root`` is given. The world is written
into ``$MOLMO_EVAL_CACHE`` (default ``~/.cache/molmo-eval``) under ``data/mini-v<version>-seed<seed>``:

- generation goes to a temporary folder beside it, which is renamed into place only when complete,
  so a crash never leaves half a world and two processes racing both end up with one good copy;
- a ``MANIFEST.json`` lists the sha256 of every file; a later use re-hashes the files and
  regenerates the world if anything is missing, changed or extra (unless no file's size,
  modification time or inode changed since the last full check, see `ensure_world`);
- the world's own digest (raw pixels before JPEG encoding and the annotation files, see
  `reference_model.world.world`) is compared with `REFERENCE_DIGESTS`, committed here, so every
  machine can tell whether it evaluates exactly the data everyone else does. JPEG bytes are not part
  of that comparison: they depend on the installed libjpeg.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_SEED = 0
DEFAULT_SIZE = "mini"
MANIFEST = "MANIFEST.json"
STAMPS = "verified"  # beside data/: the worlds' files as they were when last verified in full (`ensure_world`)

# Digests of the mini world, seed 0 (world version 1): world.json "digest" and per benchmark.
# Regenerate with `python -m molmo_eval.data.embedded --print-reference` after an intended world change
# (and bump WORLD_VERSION in reference_model/world/world.py).
# Generated identically on this project's build machine (Python 3.11, numpy 2.4, Pillow 13) and on a
# second machine (Python 3.12, numpy 2.5, Pillow 12.3).
REFERENCE_DIGESTS: dict[str, str] = {
    "world": "31e55b23a759abcf965a9b4d562500fde0a40eeee59294cff6811607873eb70f",
    "gqa": "5796e7ceb2c081eb4fa22fd5c0a912b950271af46232849533493fe7754c6eb7",
    "mmbench": "ad77d11a665f1c44306339a686ea014ac96f7a213c9f781f0301da31cc29e617",
    "pointqa": "4bbf4024196463fa5cc864fe77284f0da435ecc748423bd2402b793a5e8270f1",
    "pope": "9769e7fd733ee8b3cc352c9895c77044cb726f23f7322d3415a5c397e5965768",
    "refer": "0815faa5022f85df3a337f540de028991941b596735ccdf7a958ff564d464566",
    "textvqa": "567099602e45a400fd5e407974867ef1aaf77389ad1ce44c5d5100370e1d514c",
    "vqav2": "f7745d40f93b7358670930407a28630ad54aa25c732d28fe60f59c1f9f46bd44",
}


def cache_root() -> Path:
    env = os.environ.get("MOLMO_EVAL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "molmo-eval"


def world_dir(size: str = DEFAULT_SIZE, seed: int = DEFAULT_SEED, cache: Path | None = None) -> Path:
    from molmo_eval.reference_model.world.world import WORLD_VERSION

    return (cache or cache_root()) / "data" / f"{size}-v{WORLD_VERSION}-seed{seed}"


def portable_root(root: Path) -> Path:
    """``root`` as recorded in a run; when it is a generated world of the cache (``<size>-v<world
    version>-seed<seed>``, e.g. the small world a grid was evaluated on) that is not on this machine,
    the same world generated here (the world is deterministic: its files are verified against the
    generator's digests). Any other path is returned as it is."""
    import re

    from molmo_eval.reference_model.world.world import SIZES, WORLD_VERSION

    if root.exists():
        return root
    m = re.fullmatch(r"([a-z]+)-v(\d+)-seed(\d+)", root.name)
    if m is None or m[1] not in SIZES or int(m[2]) != WORLD_VERSION or root.parent.name != "data":
        return root
    return ensure_world(m[1], int(m[3]), quiet=True)


def default_data_root() -> Path:
    """The embedded mini world (seed 0), generated on first use and verified on every use."""
    return ensure_world(DEFAULT_SIZE, DEFAULT_SEED)


def ensure_world(size: str = DEFAULT_SIZE, seed: int = DEFAULT_SEED, cache: Path | None = None,
                 quiet: bool = False) -> Path:
    """A verified world of ``size``/``seed`` in the cache, generating (or repairing) it if needed.
    A world written by different world code (another `generator_fingerprint`) is regenerated.

    Each full verification (every file re-hashed against the manifest) leaves a stamp of the files'
    sizes, modification times and inodes beside the world; while they are unchanged (and no file was
    added or removed) the world is the one verified, as ``make`` and ``git`` judge files, and it is
    not hashed again: a run answered from the response cache should not spend its time here."""
    generator = generator_fingerprint()
    stamp = (cache or cache_root()) / STAMPS / f"{size}-seed{seed}.json"
    stamped = _stamped(stamp, generator)
    if stamped is not None:
        return stamped
    target = world_dir(size, seed, cache)
    for _ in range(3):
        if not verify_manifest(target, generator=generator):
            _write_stamp(stamp, target, generator)
            return target
        _generate_into(target, size, seed, quiet)
    problems = verify_manifest(target, generator=generator)
    if problems:
        from molmo_eval.core.errors import DataError

        raise DataError(f"the generated world does not verify: {problems[0]}", path=target)
    _write_stamp(stamp, target, generator)
    return target


def _file_stats(root: Path) -> dict[str, list[int]]:
    """``{relative path: [size, mtime_ns, inode]}`` of every file under ``root`` but the manifest."""
    out: dict[str, list[int]] = {}
    for folder, _, names in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        for name in names:
            if rel_folder == "." and name == MANIFEST:
                continue
            st = os.stat(os.path.join(folder, name))
            rel = name if rel_folder == "." else f"{rel_folder}/{name}".replace(os.sep, "/")
            out[rel] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def _manifest_digest(root: Path) -> str:
    return hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest()


def _write_stamp(stamp: Path, target: Path, generator: str) -> None:
    try:
        data = {"generator": generator, "world": str(target), "manifest": _manifest_digest(target),
                "files": _file_stats(target)}
        stamp.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, stamp)
    except OSError:  # a read-only cache: every use verifies in full
        pass


def _stamped(stamp: Path, generator: str) -> Path | None:
    """The world a stamp vouches for, if it was verified in full by this world code and no file of
    it changed, appeared or went since."""
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
        target = Path(data["world"])
        if (data["generator"] == generator and _manifest_digest(target) == data["manifest"]
                and _file_stats(target) == data["files"]):
            return target
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def list_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST)


def write_manifest(root: Path, extra: dict[str, Any]) -> None:
    files = {rel: file_sha256(root / rel) for rel in list_files(root)}
    data = dict(extra, files=files)
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, root / MANIFEST)


def generator_fingerprint() -> str:
    """A digest of the world's source code: a cached world made by other code is not reused. The
    files are read where they are, without importing them (the world code imports PIL and more)."""
    import importlib.util

    spec = importlib.util.find_spec("molmo_eval.reference_model.world")
    assert spec is not None and spec.submodule_search_locations
    h = hashlib.sha256()
    for p in sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def verify_manifest(root: Path, generator: str | None = None) -> list[str]:
    """Problems with the world at ``root`` (empty when every file matches its manifest digest and,
    if ``generator`` is given, the manifest names that generator fingerprint)."""
    path = root / MANIFEST
    if not path.is_file():
        return [f"{path} is missing"]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as e:
        return [f"{path} is unreadable ({e})"]
    if generator is not None and manifest.get("generator") != generator:
        return [f"{root} was generated by other world code"]
    present = set(list_files(root))
    problems = [f"{rel} is missing" for rel in sorted(set(files) - present)]
    problems += [f"{rel} is not in the manifest" for rel in sorted(present - set(files))]
    problems += [f"{rel} has changed" for rel in sorted(set(files) & present) if file_sha256(root / rel) != files[rel]]
    return problems


def _generate_into(target: Path, size: str, seed: int, quiet: bool) -> None:
    from molmo_eval.reference_model.world.world import write_world

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        if not quiet:
            print(f"[molmo-eval] generating the embedded {size} world (seed {seed}) into {target} ...",
                  file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        info = write_world(tmp, size, seed)
        check = reference_check(info) if (size, seed) == (DEFAULT_SIZE, DEFAULT_SEED) else {}
        write_manifest(tmp, {"world_version": info["world_version"], "size": size, "seed": seed,
                             "world_digest": info["digest"], "reference": check,
                             "generator": generator_fingerprint()})
        if check.get("mismatched") and not quiet:
            print(f"[molmo-eval] warning: this machine generated a world that differs from the reference in "
                  f"{', '.join(check['mismatched'])}; results may not be comparable with other machines",
                  file=sys.stderr, flush=True)
        _install(tmp, target)
        if not quiet:
            print(f"[molmo-eval] world ready in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _install(tmp: Path, target: Path) -> None:
    """Rename the finished world into place; a valid world installed meanwhile by another process
    wins, an invalid one is moved aside first."""
    for _ in range(3):
        try:
            os.rename(tmp, target)
            return
        except OSError:
            if not target.exists():
                continue
            if not verify_manifest(target, generator=generator_fingerprint()):
                return  # another process installed a good world first
            stale = target.with_name(f".{target.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
            try:
                os.rename(target, stale)
            except OSError:
                continue
            shutil.rmtree(stale, ignore_errors=True)


def world_digests(info: dict[str, Any]) -> dict[str, str]:
    """``{"world": digest, <benchmark>: digest}`` from a world description (world.json)."""
    out = {"world": info["digest"]}
    for name, b in sorted(info["benchmarks"].items()):
        out[name] = hashlib.sha256(json.dumps(b["digests"], sort_keys=True).encode()).hexdigest()
    return out


def reference_check(info: dict[str, Any]) -> dict[str, Any]:
    """Compare a freshly generated default world with `REFERENCE_DIGESTS`."""
    if not REFERENCE_DIGESTS:
        return {"checked": False}
    got = world_digests(info)
    mismatched = sorted(k for k, v in got.items() if k in REFERENCE_DIGESTS and REFERENCE_DIGESTS[k] != v)
    return {"checked": True, "mismatched": mismatched}


if __name__ == "__main__":  # pragma: no cover - maintenance helper
    if "--print-reference" in sys.argv:
        from molmo_eval.reference_model.world.world import write_world

        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(world_digests(write_world(d, DEFAULT_SIZE, DEFAULT_SEED)), indent=4))

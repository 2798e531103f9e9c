"""Per-sample response cache (DESIGN §7): SQLite in WAL mode, committed after every batch.

Key = blake2b over (model fingerprint, prompt, image digests, generation settings, the model's
``cache_extra``). Scoring is not part of the key, so changing a metric never invalidates cached
outputs. Failed generations are not cached: a re-run retries exactly the gaps. A corrupt cache
file is moved aside with a warning and a fresh one is started; it is never fatal. Outputs are
stored losslessly: any text a model returns (lone surrogates included) and non-finite numbers
round-trip unchanged (`molmo_eval.core.jsonio`). A cache folder that cannot be created is a
configuration error found before the run starts (`check_cache_dir`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from molmo_eval.core import jsonio
from molmo_eval.core.errors import ConfigError
from molmo_eval.core.types import Generation, Request

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    output TEXT NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID;
"""


def default_cache_dir() -> Path:
    base = os.environ.get("MOLMO_EVAL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "molmo-eval")
    return Path(base) / "responses"


def request_key(fingerprint: str, request: Request, extra: str = "") -> str:
    s = request.settings
    payload = json.dumps(
        [fingerprint, request.prompt, [im.digest for im in request.images],
         [s.max_new_tokens, s.temperature, list(s.stop)], request.answer_kind.value, extra],
        ensure_ascii=False, separators=(",", ":"),
    )
    # surrogatepass: a prompt may carry a lone surrogate from the data; normal text hashes as always
    return hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


def check_cache_dir(directory: Path) -> Path:
    """Create the cache folder, or a ConfigError saying why it cannot be (a file in the way, no
    permission) - before the run starts, not after its first batch."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"--cache-dir {directory}: is a file, not a folder") from None
    except (NotADirectoryError, PermissionError, OSError) as e:
        raise ConfigError(f"--cache-dir {directory}: cannot be created ({e.strerror or e})") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"--cache-dir {directory}: is not writable")
    return directory


class ResponseCache:
    """One SQLite file per model fingerprint prefix keeps files small and lookups local."""

    def __init__(self, directory: Path, model_fingerprint: str):
        check_cache_dir(directory)
        self.path = directory / f"{_safe(model_fingerprint)[:32]}.sqlite"
        self.model = model_fingerprint
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as e:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning("response cache %s is unreadable (%s); moved it to %s and started a new one",
                        self.path, e, aside.name)
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    os.replace(p, Path(str(aside) + suffix))
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute(_SCHEMA)
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row}")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, Generation]:
        out: dict[str, Generation] = {}
        for i in range(0, len(keys), 500):
            chunk = list(keys[i:i + 500])
            q = f"SELECT key, output FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            try:
                rows = self._conn.execute(q, chunk).fetchall()
            except sqlite3.DatabaseError as e:
                log.warning("response cache read failed (%s); treating as misses", e)
                return out
            for key, output in rows:
                try:
                    out[key] = Generation.from_json(json.loads(output))
                except (ValueError, TypeError, AttributeError, RecursionError) as e:
                    log.warning("response cache entry %s is unreadable (%s); asking the model again", key, e)
        return out

    def put_many(self, items: Iterable[tuple[str, Generation]]) -> int:
        """Store successful generations in one transaction (one commit per batch)."""
        rows = [(k, self.model, jsonio.dumps(g.to_json(), allow_nan=True), time.time())
                for k, g in items if g.error is None]
        if not rows:
            return 0
        for attempt in range(5):
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?)", rows)
                self._conn.execute("COMMIT")
                return len(rows)
            except sqlite3.OperationalError as e:  # locked by another process beyond busy_timeout
                try:
                    self._conn.execute("ROLLBACK")
                except sqlite3.OperationalError:
                    pass
                if attempt == 4:
                    log.warning("response cache write failed (%s); outputs of this batch are not cached", e)
                time.sleep(0.1 * (attempt + 1))
        return 0

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        self._conn.close()


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s) or "model"

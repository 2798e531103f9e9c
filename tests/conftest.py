from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from toy import ToyTask, make_toy_data  # noqa: E402

from molmo_eval.core import registry  # noqa: E402


@pytest.fixture
def toy_task():
    registry.register_task("toy", ToyTask)
    yield ToyTask()
    registry.unregister(registry.TASK_GROUP, "toy")


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    return make_toy_data(tmp_path / "data")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """Never touch the user's cache from tests. One folder per session, so the embedded world is
    generated once; tests that check caching pass their own cache_dir."""
    import os

    old = os.environ.get("MOLMO_EVAL_CACHE")
    os.environ["MOLMO_EVAL_CACHE"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if old is None:
        os.environ.pop("MOLMO_EVAL_CACHE", None)
    else:
        os.environ["MOLMO_EVAL_CACHE"] = old

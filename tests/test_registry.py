"""Plugin discovery through entry points: built-ins, third-party packages, conflicts, unknown names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from toy import ToyTask

from molmo_eval.core import registry
from molmo_eval.core.errors import PluginConflict, UnknownName

BUILTIN_TASKS = {"vqav2", "textvqa", "gqa", "pope", "refcoco", "refcoco+", "refcocog", "pointqa", "mmbench"}


def fake_distribution(site: Path, dist: str, group: str, entries: dict[str, str]) -> None:
    """A minimal installed distribution (dist-info with entry_points.txt) on a sys.path folder."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = [f"[{group}]"] + [f"{k} = {v}" for k, v in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_are_registered_through_entry_points():
    assert BUILTIN_TASKS <= set(registry.task_names())
    assert "scripted" in registry.model_names()
    origins = {p.origin for n, p in registry.plugins(registry.TASK_GROUP).items() if n in BUILTIN_TASKS}
    assert origins == {"molmo-eval"}


def test_third_party_plugin_is_discovered_and_loaded(site):
    (site / "thirdparty_tasks.py").write_text("from toy import ToyTask as Colours\n")
    fake_distribution(site, "thirdparty", registry.TASK_GROUP, {"colours": "thirdparty_tasks:Colours"})
    assert "colours" in registry.task_names()
    assert registry.plugins(registry.TASK_GROUP)["colours"].origin == "thirdparty"
    assert isinstance(registry.get_task("colours"), ToyTask)
    sys.modules.pop("thirdparty_tasks", None)


def test_two_plugins_claiming_one_name_is_an_error_naming_both(site):
    fake_distribution(site, "evil-pope", registry.TASK_GROUP, {"pope": "evil:POPE"})
    with pytest.raises(PluginConflict) as e:
        registry.task_names()
    msg = str(e.value)
    assert "'pope'" in msg and "evil:POPE (from evil-pope)" in msg and "molmo_eval.tasks.pope:POPE" in msg


def test_in_process_registration_cannot_shadow_a_builtin():
    with pytest.raises(PluginConflict, match="already registered"):
        registry.register_task("vqav2", ToyTask)


@pytest.mark.parametrize("name,suggestion", [("refcocoo", "refcoco"), ("vqa2", "vqav2"), ("Pope", "pope"),
                                             ("mmbnech", "mmbench")])
def test_unknown_task_suggests_close_names(name, suggestion):
    with pytest.raises(UnknownName) as e:
        registry.get_task(name)
    assert suggestion in e.value.suggestions
    assert f"did you mean '{suggestion}'" in str(e.value)


def test_unknown_model_lists_known_ones():
    with pytest.raises(UnknownName, match="unknown model 'scripte'.*did you mean 'scripted'"):
        registry.model_factory("scripte")


def test_broken_plugin_reports_its_origin(site):
    fake_distribution(site, "broken", registry.MODEL_GROUP, {"broken": "no_such_module_xyz:Model"})
    with pytest.raises(Exception, match="broken.*no_such_module_xyz:Model from broken.*failed to load"):
        registry.model_factory("broken")

"""Task and model discovery through entry points (``molmo_eval.tasks``, ``molmo_eval.models``).

Built-ins register the same way as third-party packages, in this project's ``pyproject.toml``.
An unknown name raises `UnknownName` with did-you-mean suggestions; two plugins claiming one name
raise `PluginConflict` naming both, never a silent override. In-process registration
(`register_task`, `register_model`) serves the Python API and tests under the same rules.
Entry points are loaded lazily: listing names imports nothing heavy. `plugin_metrics` gives the
installed plugin's metric definitions for a recorded task result (the gate and the reports
recompute metrics from per-sample scores with them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from molmo_eval.core.errors import MolmoEvalError, PluginConflict, UnknownName

if TYPE_CHECKING:  # numpy stays unimported for `molmo-eval tasks`
    from molmo_eval.core.metric import Metric
    from molmo_eval.core.types import TaskResult

TASK_GROUP = "molmo_eval.tasks"
MODEL_GROUP = "molmo_eval.models"


@dataclass(frozen=True)
class Plugin:
    name: str
    target: str  # "module:attr" or "<in-process>"
    origin: str  # distribution name or "<in-process>"
    _loader: Callable[[], Any]

    def load(self) -> Any:
        try:
            return self._loader()
        except MolmoEvalError:
            raise
        except Exception as e:
            raise MolmoEvalError(f"plugin {self.name!r} ({self.target} from {self.origin}) failed to "
                                 f"load: {type(e).__name__}: {e}") from e


_extra: dict[str, dict[str, Plugin]] = {TASK_GROUP: {}, MODEL_GROUP: {}}


def _scan(group: str) -> dict[str, Plugin]:
    found: dict[str, Plugin] = {}
    for ep in metadata.entry_points(group=group):
        dist = ep.dist.name if ep.dist is not None else "<unknown distribution>"
        plugin = Plugin(ep.name, ep.value, dist, ep.load)
        prev = found.get(ep.name)
        if prev is not None and prev.target != plugin.target:
            raise PluginConflict(
                f"two plugins claim the {group.rsplit('.', 1)[-1][:-1]} name {ep.name!r}: "
                f"{prev.target} (from {prev.origin}) and {plugin.target} (from {plugin.origin}); "
                f"uninstall one of them")
        found[ep.name] = plugin  # the same entry point seen twice (e.g. two metadata copies) is fine
    for name, plugin in _extra[group].items():
        prev = found.get(name)
        if prev is not None:
            raise PluginConflict(f"{name!r} is registered in-process ({plugin.target}) and by "
                                 f"{prev.target} (from {prev.origin})")
        found[name] = plugin
    return found


def _register(group: str, name: str, obj: Any) -> None:
    if name in _extra[group] or name in _scan(group):
        raise PluginConflict(f"{name!r} is already registered in {group}")
    target = getattr(obj, "__qualname__", repr(obj))
    _extra[group][name] = Plugin(name, f"<in-process {target}>", "<in-process>", lambda: obj)


def unregister(group: str, name: str) -> None:
    _extra[group].pop(name, None)


# --- tasks ----------------------------------------------------------------------------------

def task_names() -> list[str]:
    return sorted(_scan(TASK_GROUP))


def register_task(name: str, task_cls: Any) -> None:
    _register(TASK_GROUP, name, task_cls)


def get_task(name: str, variant: str | None = None) -> Any:
    """An instance of the task registered as ``name`` (with ``variant`` if given)."""
    plugins = _scan(TASK_GROUP)
    if name not in plugins:
        raise UnknownName("task", name, plugins)
    obj = plugins[name].load()
    task = obj() if isinstance(obj, type) or callable(obj) else obj
    return task.with_variant(variant)


# --- models ---------------------------------------------------------------------------------

def model_names() -> list[str]:
    return sorted(_scan(MODEL_GROUP))


def register_model(name: str, factory: Any) -> None:
    _register(MODEL_GROUP, name, factory)


def model_factory(name: str) -> Any:
    plugins = _scan(MODEL_GROUP)
    if name not in plugins:
        raise UnknownName("model", name, plugins)
    return plugins[name].load()


def plugins(group: str) -> dict[str, Plugin]:
    return _scan(group)


# --- what the gate and reports recompute from recorded per-sample scores -----------------------

def plugin_metrics(task: str, result: TaskResult) -> tuple[Mapping[str, Metric] | None, str]:
    """The installed task plugin's metrics, or (None, why not) when it is missing or differs."""
    try:
        plugin = get_task(task, result.variant)
        metrics = plugin.metrics()
    except UnknownName as e:
        return None, f"task plugin {task!r} is not installed" if e.kind == "task" else str(e)
    except MolmoEvalError as e:
        return None, f"task plugin {task!r} is not available ({e})"
    if str(plugin.version) != str(result.version):
        return None, (f"installed plugin {task!r} is version {plugin.version} but the runs were scored "
                      f"by version {result.version}")
    return {m.name: m for m in metrics}, ""

"""`molmo-eval tasks` and `molmo-eval models`: what is installed, one line each."""

from __future__ import annotations

import argparse

from molmo_eval.core import registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tasks", help="list installed benchmark tasks with their splits and variants")
    t.set_defaults(func=list_tasks)
    m = sub.add_parser("models", help="list installed model backends")
    m.set_defaults(func=list_models)


def list_tasks(args: argparse.Namespace) -> int:
    """Two lines a task: name and description; then splits (defaults marked *) and variants."""
    rows = []
    for name, plugin in sorted(registry.plugins(registry.TASK_GROUP).items()):
        cls = plugin.load()
        splits = [f"{s}*" if s in cls.default_splits else s for s in cls.splits]
        origin = "" if plugin.origin == "molmo-eval" else f"   (from {plugin.origin})"
        rows.append((name, cls.description + origin,
                     f"splits: {', '.join(splits)}   variants: {', '.join(cls.variants)}"))
    width = max(len(r[0]) for r in rows) + 2 if rows else 0
    for name, desc, detail in rows:
        print(f"{name:<{width}}{desc}\n{'':<{width}}{detail}")
    print("\n* evaluated by default; choose others with --split TASK=SPLIT")
    return 0


def list_models(args: argparse.Namespace) -> int:
    rows = []
    for name, plugin in sorted(registry.plugins(registry.MODEL_GROUP).items()):
        factory = plugin.load()
        doc = getattr(factory, "description", None) or (factory.__doc__ or "").strip().split("\n")[0]
        origin = "" if plugin.origin == "molmo-eval" else f"   (from {plugin.origin})"
        rows.append((name, doc + origin))
    width = max(len(r[0]) for r in rows) + 2 if rows else 0
    for name, doc in rows:
        print(f"{name:<{width}}{doc}")
    return 0

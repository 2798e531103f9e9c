"""`molmo-eval tasks` and `molmo-eval models`: what is installed, one line each."""

from __future__ import annotations

import argparse

from molmo_eval import registry


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tasks", help="list installed benchmark tasks with their splits and variants")
    t.set_defaults(func=list_tasks)
    m = sub.add_parser("models", help="list installed model backends")
    m.set_defaults(func=list_models)


def list_tasks(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("task", "description", "splits (default first)", "variants", "origin"):
        table.add_column(col)
    for name, plugin in sorted(registry.plugins(registry.TASK_GROUP).items()):
        cls = plugin.load()
        splits = list(cls.default_splits) + [s for s in cls.splits if s not in cls.default_splits]
        table.add_row(name, cls.description, ", ".join(splits), ", ".join(cls.variants), plugin.origin)
    Console(soft_wrap=True).print(table)
    return 0


def list_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("model", "description", "origin"):
        table.add_column(col)
    for name, plugin in sorted(registry.plugins(registry.MODEL_GROUP).items()):
        factory = plugin.load()
        doc = (getattr(factory, "description", None) or (factory.__doc__ or "").strip().splitlines()[0:1] or [""])
        table.add_row(name, doc if isinstance(doc, str) else doc[0], plugin.origin)
    Console(soft_wrap=True).print(table)
    return 0

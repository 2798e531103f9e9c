"""The cyclic garbage collector around the large, acyclic data of an evaluation.

Python's collector rescans every container object that is not yet in its oldest generation whenever
enough new ones have been made, and the whole heap when the old generation has grown by a quarter. A
split of 200k questions is millions of containers (samples, their dicts and tuples, parsed JSON),
made once and never part of a cycle, so the collector spent more time rescanning them than the
harness spent scoring: `gc_paused` while they are built, `gc_frozen` (moved out of the collector's
sight, ``gc.freeze``) while they are used.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No collection while millions of acyclic objects are built (a parsed document, a loader's
    samples); restores the previous state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def gc_frozen() -> Iterator[None]:
    """Everything alive now (the loaded samples) is left out of collections until the block ends;
    what the block makes is collected as usual."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# What a command leaves for the process's exit to free. Freeing a split of 200k questions (samples,
# answers, scores, memo tables) object by object takes a third of a second and more; a process that
# is about to end does not need its heap tidied, so the console entry (`molmo_eval.cli.main` without
# an argument list: ``molmo-eval`` and ``python -m molmo_eval``) ends such a process with `os._exit`
# once its output is flushed and its ``atexit`` handlers have run. Called in-process (``main(argv)``,
# the tests, another program) nothing is kept and nothing changes.
_kept: list[object] = []
_armed = False


def arm_quick_exit() -> None:
    """The console entry: objects given to `keep_until_exit` are left to the process's end."""
    global _armed
    _armed = True


def keep_until_exit(*objs: object) -> None:
    """Leave ``objs`` alive until the process ends (a no-op unless the console entry armed it)."""
    if _armed:
        _kept.extend(objs)


def quick_exit_wanted() -> bool:
    """Whether a command left objects to the process's end (`keep_until_exit`)."""
    return _armed and bool(_kept)

"""A grid cell -> the trainer's stage configurations: the recipe's own plan
(`reference_model.train.stage_plan`) with the cell's pointing and caption settings applied to the
stage mixtures. Between the spec (`spec`) and the plan (`plan`), which keys and shares the stages.

    pointing=on     the recipe as it is
    pointing=off    no point tokens (the trainer drops every pair that has one) and no multi-point
                    data: the world's pointing stream becomes its single-target referring
                    examples answered as plain-text coordinates ``(45, 67)`` (``refer_text``), and
                    the benchmark-format referring examples are written the same way
                    (`molmo_eval.training.bench_examples`), so RefCOCO is still answered and scored
    pointing=only   stage 3 on its pointing sources alone, no question answering or captions
                    (Molmo's "pointing only" arm; stages 1 and 2 as the recipe)
    captions=clean  the recipe's dense, correct captions (PixMo-Cap-like), one pass over stage 1's
                    images
    captions=noisy×K  short, partly wrong web-style captions (``cap_noisy``) on K times as many
                    images, each seen once: stage 1 runs K times its steps ("same passes over the
                    data", not "same compute"; ``noisy×1`` is the same-steps comparison)

Source names are the trainer's mixture names (`reference_model.train.stage_plan`, `make_sources`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from molmo_eval.grid.spec import Cell, noisy_scale

POINT_SOURCES = ("point", "bench_point")  # what "pointing only" keeps in stage 3
TEXT_REFER = "refer_text"  # the world's referring examples with plain-text coordinates
NOISY_CAPTIONS = "cap_noisy"


def trains_point_tokens(pointing: str) -> bool:
    """The trainer's ``pointing`` flag: False drops every example that mentions a point token."""
    return pointing != "off"


def cell_stages(preset: str, cell: Cell, fraction: float, bench: bool) -> tuple[Any, ...]:
    """The stage configurations (encoder pre-training included) that train ``cell``."""
    from molmo_eval.reference_model import train as rt

    plan = rt.stage_plan(preset, pointing=True, fraction=fraction, stages=cell.stages, bench=bench)
    return tuple(_captions(_pointing(s, cell.pointing), cell.captions) for s in plan)


def _pointing(stage: Any, mode: str) -> Any:
    mix = dict(stage.mixture)
    if mode == "off" and "point" in mix:
        mix[TEXT_REFER] = mix.pop("point")
    elif mode == "only" and stage.number == 3:
        mix = {k: v for k, v in mix.items() if k in POINT_SOURCES}
    return replace(stage, mixture=mix) if mix != stage.mixture else stage


def _captions(stage: Any, captions: str) -> Any:
    k = noisy_scale(captions)
    if not k or stage.mixture.get("cap", 0) <= 0 or stage.number != 1:
        return stage
    mix = {NOISY_CAPTIONS if n == "cap" else n: w for n, w in stage.mixture.items()}
    return replace(stage, mixture=mix, steps=stage.steps * k)

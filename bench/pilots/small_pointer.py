"""Pilot for the ablation grid: the small preset (the grid's) trained with the v3 recipe, the
pointer on or off, mini benchmark-format data, the preset's world pool, seed 0, 2 threads.

    python bench/pilots/small_pointer.py on|off OUT_DIR

Then: python bench/reference_card.py --checkpoint OUT_DIR/stage3_pointing --tasks vqav2,gqa,pope,refcoco,pointqa
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from molmo_eval.training.bench_examples import benchmark_groups
from molmo_eval.reference_model import train as rt
from molmo_eval.reference_model.config import preset
ptr = sys.argv[1] == "on"
out = Path(sys.argv[2])
t0 = time.time()
extra = benchmark_groups("mini", 0, True)
cfg = rt.TrainConfig(preset("small", pointer=ptr), rt.stage_plan("small", bench=True), seed=0, threads=2,
                     heldout=60, pool=rt.POOL["small"], meta={"pilot": f"small pointer={ptr}"})
rt.train(cfg, out, extra=extra)
print("seconds", time.time() - t0)

"""The evaluation run: the pipeline of DESIGN §3 (`runner`), the per-sample guard around generation,
parsing and scoring (`guard`), one split read with the checks every task gets (`loading`), parse ->
score -> aggregate for one task (`scoring`), the response cache, run directories and their
per-sample score index (`records`, `scores`) written and checked as one run (`rundir`),
data-parallel workers under torchrun, progress and the console summary. It imports the
rooms below it (`core`, `data`, `parsing`, `metrics`, task and model plugins through the registry);
the gate, reports, grids and integrations import it, never the other way round.
"""

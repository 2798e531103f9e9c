"""The evaluation run: the pipeline of DESIGN §3 (`runner`), parse -> score -> aggregate for one task
(`scoring`), the response cache, run directories and their per-sample score index (`records`,
`scores`), data-parallel workers under torchrun, progress and the console summary. It imports the
rooms below it (`core`, `data`, `parsing`, `metrics`, task and model plugins through the registry);
the gate, reports, grids and integrations import it, never the other way round.
"""

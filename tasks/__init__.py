"""Built-in benchmark task plugins, installed as ``molmo_eval.tasks`` and registered as entry points.

One module per benchmark, each a `molmo_eval.core.task.Task`; they import only `molmo_eval.core`,
`data`, `parsing` and `metrics` (the import-linter layers contract checks it), so a third-party
task package can be written against the same floors.
"""

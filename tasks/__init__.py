"""Built-in benchmark task plugins, installed as ``molmo_eval.tasks``."""

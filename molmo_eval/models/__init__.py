"""Model backends shipped with molmo-eval (registered as entry points in pyproject.toml): the
reference model, a scripted model for tests, OpenAI-compatible servers and Molmo through
transformers. A backend implements `molmo_eval.core.model.Model` and imports only `molmo_eval.core`
(and, for the reference backend, `molmo_eval.reference_model`); heavy libraries are imported inside
the factory, so a missing extra costs one clear error rather than a slow ``--help``.
"""

"""Model backends shipped with molmo-eval (registered as entry points in pyproject.toml)."""

"""The synthetic PixMo-like world: scenes with exact ground truth, training streams, and every
benchmark split written in its official file format. Deterministic from a seed.
"""

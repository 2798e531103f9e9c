"""The reference Molmo model and its synthetic world, installed as ``molmo_eval.reference_model``.

A standalone package: it imports torch, numpy and PIL, never the harness.
"""

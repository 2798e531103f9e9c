"""Metrics: the generic reducers over per-sample score columns (`generic`), each benchmark's official
scorer (`vqa`, `gqa`, `grounding`, `mmbench`, `pope`), aggregation with seeded bootstrap confidence
intervals (`stats`) and the paired significance tests under the gate and the reports (`paired`).
Pure functions of numbers and columns; it imports `molmo_eval.core` and the answer normalisation
of `molmo_eval.parsing` (the official VQA scorer normalises before it compares).
"""

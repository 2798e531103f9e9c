"""What the harness adds to training the reference model: benchmark-format training examples, the
train splits of the benchmarks written from the world's training seed space and prompted by each
task plugin (`bench_examples`). The trainer itself is `molmo_eval.reference_model.train`. This room
imports `molmo_eval.core`, `data` and `parsing` (tasks come through the registry) and the reference
model's world; `molmo-eval train` and the grid's training jobs import it.
"""

"""Ablation grids of the reference model: axes -> cells -> a graph of jobs -> a grid record.

`spec` parses the axes (stages x data size x pointing [x seed]) and settings; `plan` turns them into
one training job per distinct stage (cells that share a stage prefix share its checkpoints) and one
evaluation per distinct checkpoint; `jobs` are the functions the workers run; `executors` run a
graph of jobs locally, in a process pool or on Ray; `driver` runs a plan into ``OUT/grid.json``,
whose format is `record`. The room imports `molmo_eval.run` (each evaluation is a normal run),
`training`, `models` (the reference backend) and the rooms below, never report, gate or interop.
"""

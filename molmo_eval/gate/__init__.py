"""The regression gate: a current run compared with a baseline, task x metric. `baseline` reads the
two sides (run directories or a committed baseline file) and writes baseline files; `verdicts`
compares them with paired tests and tolerances into a `GateReport`; `output` renders that for people
and CI (terminal table, JUnit XML, Markdown). It reads records and never runs a model: it imports
`molmo_eval.run` (records, the score index) and the rooms below, never the other peers of its
floor (grid, report, interop).
"""

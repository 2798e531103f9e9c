"""Comparison reports: run and grid records -> paper tables, plots and sample views; never a model.

One table model at the bottom (`model`; `inputs` reads the records, `build` makes the table and
`significance` its paired tests against a baseline row; `presentation` says how cells and captions
read). The renderers (`markdown`, `latex`, `csv_table`, `terminal`, `html_page`), `plots` and the
sample `viewer` each import that model and never each other; `publish` composes them into documents
and regenerates the committed ``reports/``. The room imports `molmo_eval.run` (records) and the
rooms below it, and reads grid records through `molmo_eval.grid.record`: the one arrow between the
peers of its floor (grid, gate, interop).
"""

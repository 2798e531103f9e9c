"""Integrations with the tools users already run: lmms-eval (`lmms_bridge`, any molmo-eval model
behind lmms-eval's model API; `lmms_tasks`, molmo-eval tasks exported as lmms-eval task folders;
`lmms_hooks`, what those exported tasks call back to score with molmo-eval's own parsers and
metrics) and an OpenAI-compatible HTTP server for any registered model (`serve`). It imports
`molmo_eval.run` and the rooms below it, never the other peers of its floor (grid, report, gate);
lmms-eval and the HTTP stack are imported where used.
"""

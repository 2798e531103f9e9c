"""Sub-commands of the `molmo-eval` CLI, one module per command: the edge where flags become typed
configuration. Each module defines ``add_parser(subparsers)``; its parser sets ``func(args) -> int``.
The top floor under `molmo_eval.cli`: a command may import any room below it, and only the CLI
imports a command. Modules import heavy dependencies inside their handlers only.
"""

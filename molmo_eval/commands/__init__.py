"""Sub-commands of the `molmo-eval` CLI. Each module defines ``add_parser(subparsers)``; its parser
sets ``func(args) -> int``. Modules import heavy dependencies inside their handlers only.
"""

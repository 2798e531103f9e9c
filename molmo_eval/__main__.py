"""`python -m molmo_eval ...` is the `molmo-eval` command (also under torchrun)."""

from molmo_eval.cli import main

raise SystemExit(main())

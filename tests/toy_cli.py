"""`python tests/toy_cli.py ARGS...`: the molmo-eval CLI with the toy task registered (for subprocess tests)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from toy import ToyTask  # noqa: E402

from molmo_eval.cli import main  # noqa: E402
from molmo_eval.core import registry  # noqa: E402

registry.register_task("toy", ToyTask)
raise SystemExit(main(sys.argv[1:]))

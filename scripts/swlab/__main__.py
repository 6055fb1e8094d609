"""The command line: `scripts/swlab COMMAND ARGS...` (see `help`)."""

import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the working tree
if not __package__:
    # Run as `python3 scripts/swlab`: Python put scripts/swlab first on the path; put scripts/
    # there instead, so that the package is imported as swlab and its relative imports work.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from swlab.cli import run  # noqa: E402  (after the path is right)

sys.exit(run(sys.argv[1:]))

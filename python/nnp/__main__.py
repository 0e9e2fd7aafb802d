"""`python -m nnp`: the same as the `nnp` command (see nnp.cli)."""

import sys

from nnp.cli import main

sys.exit(main())

import sys

from nnp.study.cli import main

sys.exit(main())

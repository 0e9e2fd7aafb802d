import sys

from nnp.learn.cli import main

sys.exit(main())

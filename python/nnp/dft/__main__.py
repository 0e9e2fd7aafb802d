import sys

from nnp.dft.cli import main

sys.exit(main())

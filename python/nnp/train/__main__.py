import sys

from nnp.train import main

sys.exit(main())

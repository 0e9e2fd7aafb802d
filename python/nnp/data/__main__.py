import sys

from nnp.data import main

sys.exit(main())

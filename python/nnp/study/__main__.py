import sys

from nnp.study import main

sys.exit(main())

import sys

from nnp.convert import main

sys.exit(main())

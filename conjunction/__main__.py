"""`python -m conjunction`: the `conjunction` command."""

import sys

from conjunction.cli import main

sys.exit(main())

"""`python -m cli`: the `conjunction` command."""

import sys

from cli import main

sys.exit(main())

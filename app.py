"""`python app.py ARGS` from a checkout: the `conjunction` command (`conjunction.cli`)."""

import sys

from conjunction.app import main

if __name__ == "__main__":
    sys.exit(main())

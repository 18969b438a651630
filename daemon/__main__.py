"""`python -m daemon` is the `podium` command."""

import sys

from daemon.cli import main

sys.exit(main())

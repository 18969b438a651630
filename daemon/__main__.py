"""`python -m daemon` is the `podium` command."""

import sys

from daemon.app.cli import main

sys.exit(main())

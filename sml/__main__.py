"""`python -m sml ...`: the same as the `sml` command."""

import sys

from sml.cli import main

sys.exit(main())

"""`python -m harness` is the `iomem` command."""

import sys

from harness.cli import main

sys.exit(main())

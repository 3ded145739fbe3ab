"""``python -m starman``: run the server's command line."""

from __future__ import annotations

import sys

from starman.cli import main

sys.exit(main())

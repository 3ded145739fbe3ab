"""``python -m start_server``: run the superdaemon's command line."""

from __future__ import annotations

import sys

from start_server.cli import main

sys.exit(main())

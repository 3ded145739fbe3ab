#!/usr/bin/env python3
"""Throughput, latency, CPU and memory of ours beside gunicorn, granian, Perl Starman and nginx.

The entry point of the serverbench package (beside this file); ``--help`` gives the usage.
"""

from __future__ import annotations

import sys

from serverbench.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""Where the bench finds things: the repository, the apps, the load tools and the peers' programs."""

from __future__ import annotations

import os

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
APPS = os.path.join(BENCH, "apps")
HOST = "127.0.0.1"
WRK = "/usr/bin/wrk"
AB = "/usr/bin/ab"
PERL_STARMAN = "/usr/bin/starman"
NGINX = "/usr/sbin/nginx"

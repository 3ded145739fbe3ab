"""starman: a preforking WSGI (PEP 3333) HTTP/1.1 server, the Python counterpart of Perl's Starman."""

from __future__ import annotations

__version__ = "0.1.0"

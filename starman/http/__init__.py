"""starman's sans-IO HTTP/1.1 core: bytes in, events out, responses out as bytes.

No socket, selector, signal, clock or logging import (tests/unit/test_layering.py checks it).
"""

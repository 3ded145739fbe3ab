"""pytest configuration shared by unit and e2e tests."""

from __future__ import annotations

import os
import sys

# Make ``tests.helpers`` importable as ``helpers`` too, whatever the rootdir.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

"""A Flask app: ``starman --workers 4 docs/examples/flask_app.py`` (the WSGI object is ``app``).

With start_server: ``start_server --port 8080 -- starman --preload-app docs/examples/flask_app.py``.
"""

from __future__ import annotations

import os

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def index() -> str:
    """A greeting naming the worker, so a hot deploy shows new pids."""
    return f"Hello from Flask, pid {os.getpid()}\n"


@app.post("/echo")
def echo() -> dict[str, object]:
    """Echo a JSON body back with the scheme (https behind a trusted proxy)."""
    return {"got": request.get_json(), "scheme": request.scheme}

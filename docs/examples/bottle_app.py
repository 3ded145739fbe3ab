"""A Bottle app: ``starman --workers 4 docs/examples/bottle_app.py`` (the WSGI object is ``app``)."""

from __future__ import annotations

import os

import bottle

app = bottle.Bottle()


@app.get("/")
def index() -> str:
    """A greeting naming the worker."""
    return f"Hello from Bottle, pid {os.getpid()}\n"


@app.get("/hello/<name>")
def hello(name: str) -> str:
    """A route with a parameter."""
    return f"Hello, {name}\n"

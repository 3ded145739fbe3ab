"""Flask hello world for bench/bench.py (routing, request and response objects per request)."""

from __future__ import annotations

from flask import Flask, Response

app = Flask(__name__)


@app.route("/")
def index() -> Response:
    return Response("Hello World", mimetype="text/plain")


application = app

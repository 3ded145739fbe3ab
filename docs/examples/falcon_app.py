"""A Falcon app: ``starman --workers 4 docs/examples/falcon_app.py`` (the WSGI object is ``app``)."""

from __future__ import annotations

import os

import falcon


class Greeting:
    """``GET /`` answers with the worker's pid; ``POST /`` echoes the body length."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"Hello from Falcon, pid {os.getpid()}\n"

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        data = req.bounded_stream.read()
        resp.media = {"received": len(data)}


app = falcon.App()
app.add_route("/", Greeting())

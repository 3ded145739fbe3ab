"""Flask, Django, Bottle and Falcon apps served by one forked worker each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.apps import engine_apps
from tests.harness.forked_worker import connect, forked_worker, make_config, read_one

FACTORIES: dict[str, Callable[[], Any]] = {
    "flask": engine_apps.flask_app,
    "django": engine_apps.django_app,
    "bottle": engine_apps.bottle_app,
    "falcon": engine_apps.falcon_app,
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_worker_serves_framework_app(name: str) -> None:
    pytest.importorskip(name)
    # The app (and Django's global settings) is built in the child only.
    with (
        forked_worker(FACTORIES[name], make_config(), factory=True) as w,
        connect(w.address) as s,
    ):
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: example.org\r\n\r\n")
        status, _, body = read_one(s)
        assert status == b"HTTP/1.1 200 OK", body
        assert body == name.encode() + b" "
        s.sendall(
            b"POST /hello HTTP/1.1\r\nHost: example.org\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 2\r\n\r\nhi"
        )
        assert read_one(s)[2] == name.encode() + b" hi"
        s.sendall(
            b"POST /hello HTTP/1.1\r\nHost: example.org\r\nContent-Type: text/plain\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n1\r\nh\r\n1\r\ni\r\n0\r\n\r\n"
        )
        assert read_one(s)[2] == name.encode() + b" hi"

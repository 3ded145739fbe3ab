"""A one-file Django project: ``starman --workers 4 docs/examples/django_app.py``.

A real project passes its module instead: ``starman myproject.wsgi:application``
(set DJANGO_SETTINGS_MODULE as manage.py does, and use --preload-app to share memory).
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path


def index(request: HttpRequest) -> HttpResponse:
    """A greeting naming the worker."""
    return HttpResponse(
        f"Hello from Django, pid {os.getpid()}\n", content_type="text/plain"
    )


def info(request: HttpRequest) -> JsonResponse:
    """What Django made of the request: scheme, path, query."""
    return JsonResponse(
        {"scheme": request.scheme, "path": request.path, "q": request.GET.get("q")}
    )


class URLConf:
    """The URLconf as an object: starman runs this file under its own module name, so
    ROOT_URLCONF cannot be an importable dotted path here (Django accepts either)."""

    urlpatterns = [path("", index), path("info", info)]


settings.configure(
    DEBUG=False,
    SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
    ROOT_URLCONF=URLConf,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)

application = get_wsgi_application()

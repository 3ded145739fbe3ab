"""The WSGI (PEP 3333) adapter: the environ of a request, the app call and its response, and app loading."""

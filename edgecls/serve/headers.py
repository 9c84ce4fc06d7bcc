"""Reading an ASGI scope directly, for the middleware and the endpoint that skip Starlette's Request."""

from __future__ import annotations


def header(scope, name: bytes) -> bytes:
    """The first value of request header ``name`` (lower-case), or b"" when the request has none."""
    return next((value for key, value in scope["headers"] if key == name), b"")

"""One kind of error response: a status, a metrics kind and one line of JSON, `{"error": "..."}`."""

from __future__ import annotations

import json


class ApiError(Exception):
    """Raised by a route for anything the client can fix (or must retry); rendered by `error_response`."""

    def __init__(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = one_line(message)
        self.headers = headers or {}


def one_line(message: str) -> str:
    return " ".join(str(message).split())


def error_body(message: str) -> bytes:
    return json.dumps({"error": one_line(message)}).encode()


async def send_error(send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """Answer at the ASGI level (used by the middleware that refuses a request before any route runs)."""
    await send_json_body(send, status, error_body(message), headers)


async def send_json(send, content) -> None:
    """A 200 with ``content`` as compact JSON, written as Starlette's JSONResponse writes it, without building one."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    await send_json_body(send, 200, body)


async def send_json_body(send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

"""Bearer-token check for every route but the health probes (which load balancers call without a key)."""

from __future__ import annotations

import hmac

from .headers import header
from .errors import send_error
from .metrics import Metrics

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})


class BearerAuth:
    """ASGI middleware: 401 unless `Authorization: Bearer <key>`, compared in constant time."""

    def __init__(self, app, api_key: str, metrics: Metrics):
        self.app = app
        self.expected = f"Bearer {api_key}".encode()
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if hmac.compare_digest(header(scope, b"authorization"), self.expected):
            return await self.app(scope, receive, send)
        self.metrics.error("unauthorized")
        await send_error(send, 401, "missing or wrong API key: send `Authorization: Bearer <key>`",
                         {"WWW-Authenticate": "Bearer"})

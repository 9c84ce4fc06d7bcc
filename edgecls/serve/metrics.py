"""Prometheus metrics of one app, in its own registry (two apps in one process never share counters)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("edgecls_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)
        self.errors = Counter("edgecls_errors", "Refused or failed requests by kind", ["kind"], registry=r)
        self.latency = Histogram("edgecls_request_seconds", "Request latency, first byte in to response sent",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("edgecls_batch_size", "Images per engine call", buckets=BATCH_BUCKETS, registry=r)
        self.engine_seconds = Histogram("edgecls_engine_seconds", "Time of one engine call",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.images = Counter("edgecls_images", "Images (or tensor rows) run through the engine", registry=r)
        self.queue_depth = Gauge("edgecls_queue_depth", "Images waiting for the engine", registry=r)
        self.arriving = Gauge("edgecls_requests_arriving", "Admitted requests still being read or decoded",
                              registry=r)
        self.reloads = Counter("edgecls_reloads", "Model reloads by result", ["result"], registry=r)

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware: counts every HTTP request by route template and status, and times it."""

    def __init__(self, app, metrics: Metrics, route_names: dict):
        self.app = app
        self.metrics = metrics
        self.route_names = route_names  # endpoint function → route path template
        self._cache: dict[tuple[str, int], tuple] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            count, latency = self._children(self.route_names.get(scope.get("endpoint"), "other"), status)
            count.inc()
            latency.observe(time.perf_counter() - start)

    def _children(self, route: str, status: int):
        """The labelled counter and histogram, looked up once per (route, status)."""
        key = (route, status)
        if key not in self._cache:
            self._cache[key] = (self.metrics.requests.labels(route, str(status)),
                                self.metrics.latency.labels(route))
        return self._cache[key]

"""`create_app`: the ASGI app of `edgecls serve` (Starlette), wired from small modules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edgecls.host import reload_signal
from edgecls.shipped import model_location

from . import admin, classify, page, v2
from .auth import BearerAuth
from .batching import Batcher
from .config import ServeConfig
from .errors import ApiError, one_line
from .limits import BodyLimits
from .metrics import Metrics, RequestMetrics
from .models import ModelSlot, load_model

log = logging.getLogger("edgecls.serve")

ROUTES = [
    Route("/", page.page),
    Route("/v1/classify", classify.Classify(), methods=["POST"]),
    Route("/v1/model", admin.model_info),
    Route("/v1/reload", admin.reload, methods=["POST"]),
    Route("/metrics", admin.metrics),
    *v2.ROUTES,
]


def create_app(config: ServeConfig | None = None, **settings) -> Starlette:
    """The app for ``config`` (or ServeConfig(**settings)); the model loads now, so a bad one fails here."""
    config = (config or ServeConfig(**settings)).check()
    metrics = Metrics()
    model = load_model(model_location(config.model), config, allow_failed=True)  # failing: up, but not ready
    middleware = [Middleware(RequestMetrics, metrics=metrics, route_names={r.endpoint: r.path for r in ROUTES})]
    if config.api_key:
        middleware.append(Middleware(BearerAuth, api_key=config.api_key, metrics=metrics))
    middleware.append(Middleware(BodyLimits, max_bytes=config.max_body_bytes, timeout_s=config.body_timeout_s,
                                 metrics=metrics))
    app = Starlette(routes=ROUTES, middleware=middleware, lifespan=_lifespan,
                    exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                                        ClientDisconnect: _client_gone})
    app.state.config = config
    app.state.metrics = metrics
    app.state.slot = ModelSlot(model, config, metrics)
    app.state.batcher = Batcher(config.max_batch, config.max_wait_ms / 1000, config.max_queue, metrics)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette):
    state = app.state
    state.decode_pool = ThreadPoolExecutor(state.config.decode_pool, thread_name_prefix="edgecls-decode")
    state.batcher.start()
    hup = _watch_sighup(app)
    try:
        yield
    finally:
        if hup:
            asyncio.get_running_loop().remove_signal_handler(reload_signal())
        state.batcher.stop()
        state.decode_pool.shutdown()


def _watch_sighup(app: Starlette) -> bool:
    """SIGHUP reloads the served path where the OS has it and the loop can take signals (the main thread,
    POSIX); elsewhere, as on Windows, POST /v1/reload does it."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    def on_signal() -> None:
        task = loop.create_task(_reload_on_signal(app))
        pending.add(task)
        task.add_done_callback(pending.discard)

    if reload_signal() is None:
        return False
    try:
        loop.add_signal_handler(reload_signal(), on_signal)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):
        return False
    return True


async def _reload_on_signal(app: Starlette) -> None:
    try:
        _, new = await app.state.slot.reload(None)
    except ApiError as e:
        app.state.metrics.error(e.kind)
        log.error("SIGHUP: %s", e.message)
        return
    log.warning("SIGHUP: now serving %s (%s, %s)", new.path, new.classifier.choice.format, new.verified)


async def _api_error(request: Request, exc: ApiError) -> Response:
    request.app.state.metrics.error(exc.kind)
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


HTTP_ERROR_KINDS = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: HTTPException) -> Response:
    kind = HTTP_ERROR_KINDS.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
    request.app.state.metrics.error(kind)
    return JSONResponse({"error": one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


async def _client_gone(request: Request, exc: ClientDisconnect) -> Response:
    request.app.state.metrics.error("disconnect")
    return Response(status_code=400)

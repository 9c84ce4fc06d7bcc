"""`edgecls serve`: the HTTP inference service for the edge box (needs the serve extra)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgecls.errors import EdgeclsError, UsageError
from edgecls.extras import require_extra
from edgecls.serve.config import ServeConfig

from .options import (SHIPPED_HELP, THREADS_DEFAULT, AllowFailedProof, backend_option, device_option,
                      threads_option)

Opt = typer.Option
D = ServeConfig()  # the defaults, defined once


def serve_command(
    model: Annotated[Optional[Path], typer.Argument(
        help=f"An export folder, a model file, or {SHIPPED_HELP}.", show_default=False)] = None,
    host: Annotated[str, Opt(help="Address to bind; anything but loopback exposes it to the network.")] = D.host,
    port: Annotated[int, Opt(help="TCP port.")] = D.port,
    backend: backend_option() = D.backend,
    device: device_option() = None,
    threads: threads_option(default=f"one less than {THREADS_DEFAULT}, at least 1; the HTTP side needs one") = None,
    max_batch: Annotated[int, Opt(help="Most images in one engine call.")] = D.max_batch,
    max_wait_ms: Annotated[float, Opt(help="Longest a batch waits for requests already arriving.")] = D.max_wait_ms,
    max_queue: Annotated[int, Opt(help="Images admitted but not answered; past it, 503 + Retry-After.")] = D.max_queue,
    max_body_mb: Annotated[float, Opt(help="Largest request body (413 past it).")] = D.max_body_mb,
    body_timeout_s: Annotated[float, Opt(help="A request body must arrive within this (408).")] = D.body_timeout_s,
    header_timeout_s: Annotated[float, Opt(help="Request headers must arrive within this, counted from the "
                                                "connect or the request's first byte.")] = D.header_timeout_s,
    keep_alive_s: Annotated[float, Opt(help="Idle keep-alive connections are closed after this.")] = D.keep_alive_s,
    api_key_env: Annotated[Optional[str], Opt(help="Environment variable holding the API key; then every route "
                                                   "but /v2/health/* needs `Authorization: Bearer <key>`.",
                                              show_default=False)] = None,
    allow_failed_proof: AllowFailedProof = False,
) -> None:
    """Serve a model over HTTP: /v1/classify, KServe v2 (/v2/...), /metrics and a page at /.

    The file is proven on this CPU as it loads: one that fails its golden check keeps the server not ready
    (503) until a reload brings one that passes, unless --allow-failed-proof."""
    require_extra("serve", "serve")
    from edgecls.serve.server import serve

    config = ServeConfig(model=model, backend=backend, device=device, threads=threads, host=host, port=port,
                         max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, max_body_mb=max_body_mb,
                         body_timeout_s=body_timeout_s, header_timeout_s=header_timeout_s, keep_alive_s=keep_alive_s,
                         api_key=_api_key(api_key_env), allow_failed_proof=allow_failed_proof)
    try:
        serve(config.check())
    except UsageError:
        raise
    except EdgeclsError as e:
        raise UsageError(str(e)) from None


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise UsageError(f"--api-key-env {variable}: that environment variable is unset or empty")
    return value

"""GET /v1/model, POST /v1/reload and GET /metrics."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import ApiError


async def model_info(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.slot.current.info())


async def reload(request: Request) -> JSONResponse:
    """Body `{"model": PATH}`, or empty to reload the path being served."""
    body = await request.body()
    path = _reload_path(body)
    old, new = await request.app.state.slot.reload(path)
    return JSONResponse({"previous": str(old.path), "model": new.info()})


def _reload_path(body: bytes) -> Path | None:
    if not body.strip():
        return None
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, "bad_request", f"malformed JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model", ""), str) or set(doc) - {"model"}:
        raise ApiError(400, "bad_request", 'the reload body must be {"model": "PATH"} or empty')
    return Path(doc["model"]) if doc.get("model") else None


async def metrics(request: Request) -> Response:
    content, content_type = request.app.state.metrics.exposition()
    return Response(content, headers={"content-type": content_type})

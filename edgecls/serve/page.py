"""GET /: the one-page browser client (inline HTML, CSS and JS in page.html; no build step, no external assets)."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse

# The page loads nothing from anywhere but this server.
CSP = "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


@lru_cache(maxsize=1)
def page_html() -> str:
    return (files("edgecls.serve") / "page.html").read_text(encoding="utf-8")


async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(page_html(), headers={"Content-Security-Policy": CSP})

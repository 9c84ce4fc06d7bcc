"""`edgecls serve`: the HTTP inference service (Starlette + uvicorn; `pip install 'edgecls[serve]'`).

`create_app` is imported on first use, so `edgecls.serve.config` loads on the base install too
(the CLI reads its defaults from there).
"""

from .config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

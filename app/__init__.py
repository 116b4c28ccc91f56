"""Taskcast: background tasks with live output in the browser, inside one aiohttp process.

`app.tasks` and `app.publish` are the task API; `app.create_app` builds the server. The server
side is imported lazily so that process-pool workers, which only need the task API, never load
aiohttp.web.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.web.application import create_app as create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from app.web.application import create_app

        return create_app
    raise AttributeError(f"module 'app' has no attribute {name!r}")

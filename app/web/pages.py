"""How pages are rendered: the header's context, and the Jinja filters for times."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from taskcast.web.keys import BASE, CHANNEL_PATH, POLICY
from taskcast.web.security import TokenAccess, user_of


def when(value: datetime | None) -> str:
    """A time for a table cell: the time of day, with the date when it is not today (UTC)."""
    if value is None:
        return ""
    today = datetime.now(UTC).date()
    return value.strftime("%H:%M:%S" if value.date() == today else "%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


JINJA_FILTERS: dict[str, Callable[..., str]] = {"when": when, "duration": duration}


def page_context(request: web.Request) -> dict[str, Any]:
    """What every page's header needs: who is signed in, and whether there is a sign-out."""
    return {
        "user": user_of(request),
        "can_sign_out": isinstance(request.app[POLICY], TokenAccess),
        "base": request.app[BASE],
        "channel": request.app[CHANNEL_PATH],
    }


PageHandler = Callable[[web.Request], Awaitable[dict[str, Any]]]


def page(
    template_name: str,
) -> Callable[[PageHandler], Callable[[web.Request], Awaitable[web.Response]]]:
    """Render the handler's context with `template_name`, plus what the header needs."""

    def decorator(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        @functools.wraps(handler)
        async def render(request: web.Request) -> web.Response:
            context = {**page_context(request), **await handler(request)}
            return aiohttp_jinja2.render_template(template_name, request, context)

        return render

    return decorator

"""How pages are rendered: the shell's context (who is signed in, the navigation and which of
its sections holds the page), and the Jinja filters for times."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web

from taskcast.web.keys import BASE, CHANNEL_PATH, DEMO, POLICY, local_path
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


#: the navigation's sections: (key, label, path below the base, paths below the base it holds)
SECTIONS: Final = (
    ("tasks", "Tasks", "/", ("/tasks/", "/stats", "/purge")),
    ("start", "Start a task", "/registry", ("/start/",)),
    ("schedules", "Schedules", "/schedules", ("/schedules/",)),
    ("demo", "Demo", "/demo", ("/demo/",)),
)


def current_section(path: str) -> str | None:
    """The key of the section that holds the page at `path` (below the base), if any."""
    for key, _label, home, inside in SECTIONS:
        if path == home or path.startswith(inside):
            return key
    return None


def navigation(request: web.Request) -> list[dict[str, Any]]:
    """The navigation's links, the current section's marked; the demo only where it is mounted."""
    base, here = request.app[BASE], current_section(local_path(request))
    return [
        {"label": label, "href": f"{base}{home}", "current": key == here}
        for key, label, home, _inside in SECTIONS
        if key != "demo" or request.app[DEMO]
    ]


def page_context(request: web.Request) -> dict[str, Any]:
    """What the shell of every page needs: who is signed in, whether there is a sign-out, the
    navigation (signed-out pages such as the login set `signed_out` and show none)."""
    return {
        "user": user_of(request),
        "can_sign_out": isinstance(request.app[POLICY], TokenAccess),
        "base": request.app[BASE],
        "channel": request.app[CHANNEL_PATH],
        "demo": request.app[DEMO],
        "navigation": navigation(request),
        "signed_out": False,
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

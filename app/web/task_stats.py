"""Looking back over the stored tasks: per-function statistics over a window, and the purge of
old finished records behind a confirmation page (a GET that shows what would go, a POST that
does it). Both read and write through the store (`store.browse`) in the loop's executor."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aiohttp import web

from taskcast.errors import StoreError
from taskcast.store.browse import window
from taskcast.web import params
from taskcast.web.errors import ApiError
from taskcast.web.keys import BASE, POLICY, RUNNER, STORE
from taskcast.web.pages import page
from taskcast.web.security import user_of

logger = logging.getLogger(__name__)

#: the windows the pages offer; any other like "90m" or "30d" works in the URL too
WINDOWS: Final = ("1h", "24h", "7d")
#: the ages a purge offers; any window works in the URL
PURGE_AGES: Final = ("1d", "7d", "30d")


def _window(text: str, name: str) -> timedelta:
    try:
        return window(text)
    except ValueError as exc:
        raise params.BadParameter(f"{name}: {exc}") from None


def _owner(request: web.Request) -> str | None:
    """The user whose tasks alone these pages may count or purge (None: everyone's)."""
    return request.app[POLICY].only_started_by(user_of(request))


@page("stats.html")
async def stats_page(request: web.Request) -> dict[str, Any]:
    """Per function: runs, failures, failure rate, p50 and p95 duration over a window."""
    chosen = request.query.get("window", "24h")
    since = datetime.now(UTC) - _window(chosen, "window")
    store, owner = request.app[STORE], _owner(request)
    stats = await request.app[RUNNER].loop.run_in_executor(None, store.function_stats, since, owner)
    return {"stats": stats, "window": chosen, "windows": WINDOWS, "since": since}


def _purge_age(text: str) -> tuple[str, datetime]:
    return text, datetime.now(UTC) - _window(text, "older")


@page("purge.html")
async def purge_form(request: web.Request) -> dict[str, Any]:
    """The confirmation: how many finished records older than the chosen age would go."""
    age, before = _purge_age(request.query.get("older", "7d"))
    store, owner = request.app[STORE], _owner(request)
    count = await request.app[RUNNER].loop.run_in_executor(
        None, store.count_purgeable, before, owner
    )
    return {"older": age, "ages": PURGE_AGES, "count": count, "before": before}


async def purge(request: web.Request) -> web.Response:
    """Delete the finished records older than the confirmed age, then say how many went."""
    form = await params.read_form(request)
    if params.form_text(form, "confirm") != "yes":
        raise params.BadParameter("confirm the purge on its page first (confirm=yes)")
    _, before = _purge_age(params.form_text(form, "older"))
    store, owner = request.app[STORE], _owner(request)
    try:
        purged = await request.app[RUNNER].loop.run_in_executor(
            None, store.purge_finished, before, owner
        )
    except StoreError as exc:
        logger.error("purge of the tasks finished before %s failed: %s", before, exc)
        raise ApiError(
            503, "store_unavailable", f"nothing was purged: the database refused it ({exc})"
        ) from None
    raise web.HTTPSeeOther(f"{request.app[BASE]}/?purged={purged}")

"""The task console: one task's page and cancel, for people (the list is `task_list`'s, the
start forms are `start_forms`').

Every page works without JavaScript (plain links and forms); `static/console.js` adds live
updates over the feed. Nothing a user typed reaches a page unescaped (autoescape is on).
"""

from __future__ import annotations

import pprint
from typing import Any

from aiohttp import web

from taskcast.runtime.execution import short_error
from taskcast.web.errors import ApiError
from taskcast.web.keys import BASE, POLICY, RUNNER
from taskcast.web.pages import page
from taskcast.web.security import user_of
from taskcast.web.services import visible_record


def _pretty(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=False)


@page("task.html")
async def task_page(request: web.Request) -> dict[str, Any]:
    try:
        record = visible_record(request)
    except ApiError:
        raise web.HTTPNotFound(text=f"no task {request.match_info['id']!r}") from None
    policy, user = request.app[POLICY], user_of(request)
    return {
        "task": record,
        "short_error": short_error(record.error),
        "result": _pretty(record.result) if record.success else None,
        "arguments": _pretty({"args": list(record.args), "kwargs": record.kwargs}),
        "cancellable": not record.status.is_final and policy.can_cancel(user, record),
    }


async def cancel(request: web.Request) -> web.Response:
    """The Cancel button: stop the task, then show its page again."""
    try:
        record = visible_record(request)
    except ApiError:
        raise web.HTTPNotFound(text=f"no task {request.match_info['id']!r}") from None
    if not request.app[POLICY].can_cancel(user_of(request), record):
        raise web.HTTPForbidden(text="you may not cancel this task")
    request.app[RUNNER].cancel(record.id)  # False when it has just finished: the page says so
    raise web.HTTPSeeOther(f"{request.app[BASE]}/tasks/{record.id}")

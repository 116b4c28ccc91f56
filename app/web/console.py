"""The task console: the task list, one task's page and cancel, for people (the start forms
are `taskcast.web.start_forms`).

Every page works without JavaScript (plain links and forms); `static/console.js` adds live
updates over the feed. Nothing a user typed reaches a page unescaped (autoescape is on).
"""

from __future__ import annotations

import math
import pprint
from typing import Any

from aiohttp import web

from taskcast.records import TaskStatus
from taskcast.runtime.execution import short_error
from taskcast.web import params
from taskcast.web.api import MAX_OFFSET
from taskcast.web.errors import ApiError
from taskcast.web.keys import BASE, POLICY, REGISTRY, RUNNER
from taskcast.web.pages import page
from taskcast.web.security import user_of
from taskcast.web.services import list_visible, visible_record

PER_PAGE = 50
FILTER_LIMIT = 200
#: the furthest page of the list (the API's offset bound, in pages)
MAX_PAGE = MAX_OFFSET // PER_PAGE


@page("index.html")
async def index(request: web.Request) -> dict[str, Any]:
    """Tasks, newest first, filtered by status, group and function, fifty a page."""
    status_text = request.query.get("status", "")
    try:
        status = TaskStatus(status_text) if status_text else None
    except ValueError:
        raise web.HTTPBadRequest(text=f"unknown status {status_text[:FILTER_LIMIT]!r}") from None
    group = request.query.get("group", "")[:FILTER_LIMIT] or None
    func = request.query.get("func", "")[:FILTER_LIMIT] or None
    page = params.query_number(request, "page", 1, 1, MAX_PAGE)
    records, total = await list_visible(
        request,
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
        status=status,
        group=group,
        func=func,
    )
    runner = request.app[RUNNER]
    return {
        "tasks": records,
        "total": total,
        "page": page,
        "pages": max(1, math.ceil(total / PER_PAGE)),
        "filters": {"status": status_text, "group": group or "", "func": func or ""},
        "statuses": list(TaskStatus),
        "functions": [task.name for task in request.app[REGISTRY]],
        "queued": runner.queue_size,
        "running": runner.running_count,
        "live": page == 1 and not (status or group or func),
        "here": request.path_qs,
    }


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

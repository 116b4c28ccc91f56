"""The task list page: search, filters, sorting and paging in the URL, live counters and
progress, and the bulk cancel of queued tasks.

Everything works with plain links and forms; `static/console.js` keeps rows, counters and
progress current over the feed. The store does the searching and sorting (`store.browse`).
"""

from __future__ import annotations

import math
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from taskcast.records import TaskRecord, TaskStatus
from taskcast.store.browse import SORTS, Search
from taskcast.web import activity, params
from taskcast.web.api import MAX_OFFSET
from taskcast.web.keys import BASE, HUB, POLICY, REGISTRY, RUNNER, STORE
from taskcast.web.pages import page
from taskcast.web.security import user_of

PER_PAGE: Final = 50
#: the furthest page of the list (the API's offset bound, in pages)
MAX_PAGE: Final = MAX_OFFSET // PER_PAGE
#: the most tasks one bulk cancel may name
MAX_BULK: Final = 500
#: the columns that sort, as (URL name, heading), in the table's order
SORTABLE: Final = (
    ("name", "Task"),
    ("status", "Status"),
    ("queued", "Queued"),
    ("started", "Started"),
    ("finished", "Finished"),
    ("took", "Took"),
)
#: sorts whose first click goes A to Z; times go newest first
ASCENDING_FIRST: Final = frozenset({"name", "status", "function"})


def _status(text: str) -> TaskStatus | None:
    try:
        return TaskStatus(text) if text else None
    except ValueError:
        choices = ", ".join(status.value for status in TaskStatus)
        raise params.BadParameter(f"status must be one of {choices}") from None


def _search(request: web.Request) -> Search:
    text = params.query_text(request, "q")
    if text is not None:
        text = text.strip() or None
    sort = request.query.get("sort", "queued")
    if sort not in SORTS:
        raise params.BadParameter(f"sort must be one of {', '.join(SORTS)}")
    direction = request.query.get("dir", "desc")
    if direction not in ("asc", "desc"):
        raise params.BadParameter("dir must be asc or desc")
    return Search(text, sort, direction == "desc")


def _link(base: str, query: dict[str, Any]) -> str:
    kept = {key: value for key, value in query.items() if value not in (None, "")}
    return f"{base}/?{urlencode(kept)}" if kept else f"{base}/"


def sort_headings(base: str, query: dict[str, Any], search: Search) -> list[dict[str, Any]]:
    """Each sortable heading's link (the other direction when it is the current sort) and its
    `aria-sort`."""
    headings = []
    for key, label in SORTABLE:
        current = key == search.sort
        if current:
            descending = not search.descending
        else:
            descending = key not in ASCENDING_FIRST
        state = "none"
        if current:
            state = "descending" if search.descending else "ascending"
        link = _link(base, {**query, "sort": key, "dir": "desc" if descending else "asc"})
        headings.append({"key": key, "label": label, "href": link, "aria_sort": state})
    return headings


def _notices(request: web.Request) -> list[str]:
    """What the last bulk cancel or purge did, from the URL it redirected to."""
    said = []
    cancelled = params.query_number(request, "cancelled", -1, 0, MAX_BULK)
    skipped = params.query_number(request, "skipped", 0, 0, MAX_BULK)
    if cancelled >= 0:
        said.append(f"Cancelled {cancelled} queued task{'s' if cancelled != 1 else ''}.")
        if skipped:
            said.append(
                f"Left {skipped} alone: not queued any more, or not yours to cancel "
                "(running and finished tasks are never cancelled from the list)."
            )
    purged = params.query_number(request, "purged", -1, 0, MAX_OFFSET)
    if purged >= 0:
        said.append(f"Purged {purged} finished task record{'s' if purged != 1 else ''}.")
    return said


@page("index.html")
async def index(request: web.Request) -> dict[str, Any]:
    """Tasks matching the search and filters, in the chosen order, fifty a page."""
    status_text = request.query.get("status", "")
    status = _status(status_text)
    group = params.query_text(request, "group")
    func = params.query_text(request, "func")
    search = _search(request)
    number = params.query_number(request, "page", 1, 1, MAX_PAGE)
    policy, user = request.app[POLICY], user_of(request)
    owner = policy.only_started_by(user)
    store, runner = request.app[STORE], request.app[RUNNER]

    def read() -> tuple[list[TaskRecord], int]:
        return store.search_tasks(
            search,
            group=group,
            status=status,
            func=func,
            started_by=owner,
            limit=PER_PAGE,
            offset=(number - 1) * PER_PAGE,
        )

    found, total = await runner.loop.run_in_executor(None, read)
    records = [record for record in found if policy.can_see(user, record)]
    base = request.app[BASE]
    query = {
        "q": search.text or "",
        "status": status_text,
        "group": group or "",
        "func": func or "",
        "sort": "" if search.sort == "queued" else search.sort,
        "dir": "" if search.descending else "asc",
    }
    filtered = bool(search.text or status or group or func)
    progress = activity.progress_map(
        runner, request.app[HUB], [r.id for r in records], lambda r: policy.can_see(user, r)
    )
    return {
        "tasks": records,
        "progress": progress,
        "cancellable": {
            r.id for r in records if r.status is TaskStatus.QUEUED and policy.can_cancel(user, r)
        },
        "total": total,
        "page": number,
        "pages": max(1, math.ceil(total / PER_PAGE)),
        "page_link": lambda n: _link(base, {**query, "page": n}),
        "headings": sort_headings(base, query, search),
        "query": query,
        "filtered": filtered,
        "statuses": list(TaskStatus),
        "functions": [task.name for task in request.app[REGISTRY]],
        "counts": activity.counts(runner),
        "notices": _notices(request),
        "live": number == 1 and not filtered and search.sort == "queued" and search.descending,
        "here": request.path_qs,
    }


async def bulk_cancel(request: web.Request) -> web.Response:
    """Cancel the ticked queued tasks in one POST; a task that is running, finished, unknown or
    not this user's to cancel is left alone and counted as skipped."""
    form = await params.read_form(request)
    ids = [value for value in form.getall("id", []) if isinstance(value, str)]
    if not ids:
        raise params.BadParameter("tick at least one queued task to cancel")
    if len(ids) > MAX_BULK:
        raise params.BadParameter(f"at most {MAX_BULK} tasks may be cancelled at once")
    runner, policy, user = request.app[RUNNER], request.app[POLICY], user_of(request)
    queued = {
        record.id: record
        for record in runner.active_records()
        if record.status is TaskStatus.QUEUED
    }
    cancelled = 0
    for task_id in dict.fromkeys(ids):  # each once, in the order given
        record = queued.get(task_id)
        # No await between the check and the cancel: the task cannot start in between.
        if record is not None and policy.can_cancel(user, record) and runner.cancel(task_id):
            cancelled += 1
    skipped = len(dict.fromkeys(ids)) - cancelled
    raise web.HTTPSeeOther(_link(request.app[BASE], {"cancelled": cancelled, "skipped": skipped}))

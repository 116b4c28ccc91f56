"""The JSON API: start, list, read, cancel and follow tasks from scripts.

Errors are JSON `{"error": <short code>, "detail": <message>}` with the status that fits: 400 a
bad body or arguments, 401/403 authentication and permission, 404 an unknown task, 409 a task
that has finished or a stream id still in use, 413 a body over the limit, 503 shutting down
(written by `taskcast.web.errors`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from taskcast.records import TaskStatus
from taskcast.store.store import within
from taskcast.web import activity
from taskcast.web.errors import ApiError
from taskcast.web.jsonview import record_json
from taskcast.web.keys import (
    BASE,
    CHANNEL_PATH,
    CORE,
    HUB,
    POLICY,
    RUNNER,
    STARTED_AT,
    STORE,
    WATCHDOG,
)
from taskcast.web.params import query_number, query_text
from taskcast.web.security import user_of
from taskcast.web.services import list_visible, start_registered, startable, visible_record

#: tasks one page of `GET /api/tasks` holds by default, and at most
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: the furthest a list may be paged (an offset beyond any real table)
MAX_OFFSET = 10**9
START_FIELDS = frozenset({"name", "arguments", "task_publish_id"})


async def read_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(400, "bad_request", "send the body as JSON (Content-Type: application/json)")
    raw = await request.read()  # over the size limit: 413, turned into JSON by api_errors
    try:
        body = json.loads(raw)
    except ValueError as exc:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        raise ApiError(400, "bad_request", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "bad_request", "the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return body


def _status_param(request: web.Request) -> TaskStatus | None:
    text = request.query.get("status")
    if not text:
        return None
    try:
        return TaskStatus(text)
    except ValueError:
        choices = ", ".join(status.value for status in TaskStatus)
        raise ApiError(400, "bad_request", f"status must be one of {choices}") from None


async def start_task(request: web.Request) -> web.Response:
    body = await read_object(request)
    unknown = set(body) - START_FIELDS
    if unknown:
        raise ApiError(400, "bad_request", f"unknown field(s): {', '.join(sorted(unknown))}")
    record = start_registered(
        request, body.get("name"), body.get("arguments", {}), body.get("task_publish_id")
    )
    api_url = f"{request.app[BASE]}/api/tasks/{record.id}"
    body = {
        **record_json(record, request, detail=False),
        "websocket_href": request.app[CHANNEL_PATH],
        "api_url": api_url,
    }
    return web.json_response(body, status=201, headers={"Location": api_url})


async def list_tasks(request: web.Request) -> web.Response:
    limit = query_number(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = query_number(request, "offset", 0, 0, MAX_OFFSET)
    records, total = await list_visible(
        request,
        limit=limit,
        offset=offset,
        status=_status_param(request),
        group=query_text(request, "group"),
        func=query_text(request, "func"),
        started_by=query_text(request, "started_by"),
    )
    visible = [record_json(record, request, detail=False) for record in records]
    return web.json_response({"tasks": visible, "total": total, "limit": limit, "offset": offset})


async def get_task(request: web.Request) -> web.Response:
    return web.json_response(record_json(visible_record(request), request))


async def cancel_task(request: web.Request) -> web.Response:
    record = visible_record(request)
    if not request.app[POLICY].can_cancel(user_of(request), record):
        raise ApiError(403, "forbidden", f"you may not cancel task {record.id}")
    runner = request.app[RUNNER]
    if not runner.cancel(record.id):
        final = runner.get(record.id) or record
        raise ApiError(
            409,
            "finished",
            f"task {record.id} has already finished ({final.status.value})",
            task_status=final.status.value,
        )
    return web.json_response({"id": record.id, "cancelled": True})


#: bytes of event data one page of `GET /api/tasks/{id}/events` holds at most (one event more
#: is never cut: a larger event comes alone)
MAX_EVENTS_PAGE_BYTES = 1024 * 1024
#: events one page holds by default, and at most
DEFAULT_EVENTS_LIMIT = 1000
MAX_EVENTS_LIMIT = 10_000
#: the highest sequence number `after` may name
MAX_EVENTS_AFTER = 10**12


def _events_body(
    record_id: str,
    stream_id: str | None,
    events: list[tuple[int, str]],
    after: int,
    finished: bool,
    status: str,
) -> bytes:
    """The page as JSON bytes; the events' data is already JSON, so it is spliced, not parsed."""
    head = json.dumps({"id": record_id, "stream_id": stream_id})[:-1]
    parts = ",".join(f'{{"seq":{seq},"data":{data}}}' for seq, data in events)
    tail = json.dumps(
        {"next_after": events[-1][0] if events else after, "finished": finished, "status": status}
    )[1:]
    return f'{head},"events":[{parts}],{tail}'.encode()


async def task_events(request: web.Request) -> web.Response:
    """The task's stream as JSON, for clients without websockets (poll with `after`): a page of
    at most `limit` events and MAX_EVENTS_PAGE_BYTES of data, built off the event loop."""
    record = visible_record(request)
    after = query_number(request, "after", 0, 0, MAX_EVENTS_AFTER)
    limit = query_number(request, "limit", DEFAULT_EVENTS_LIMIT, 1, MAX_EVENTS_LIMIT)
    stream = request.app[HUB].get(record.stream_id) if record.stream_id else None
    loop = request.app[RUNNER].loop
    if stream is not None and stream.run_id == record.id:
        history = stream.history(after)[:limit]
        events = within([(e.seq, e.data_json) for e in history], MAX_EVENTS_PAGE_BYTES)
        finished = stream.end is not None
    else:
        store = request.app[STORE]
        events = await loop.run_in_executor(
            None, store.events, record.id, after, limit, MAX_EVENTS_PAGE_BYTES
        )
        finished = record.status.is_final
    current = request.app[RUNNER].get(record.id) or record
    body = await loop.run_in_executor(
        None,
        _events_body,
        record.id,
        record.stream_id,
        events,
        after,
        finished,
        current.status.value,
    )
    return web.Response(body=body, content_type="application/json")


async def registry(request: web.Request) -> web.Response:
    return web.json_response({"tasks": [task.as_json() for task in startable(request)]})


async def activity_now(request: web.Request) -> web.Response:
    """Running and queued counts, why tasks wait, and the progress of the running tasks among
    the `id` parameters (at most `activity.MAX_IDS`): what the task list polls for."""
    ids = request.query.getall("id", [])
    if len(ids) > activity.MAX_IDS:
        raise ApiError(400, "bad_request", f"ask for at most {activity.MAX_IDS} ids at once")
    runner, policy, user = request.app[RUNNER], request.app[POLICY], user_of(request)
    progress = activity.progress_map(
        runner, request.app[HUB], ids, lambda record: policy.can_see(user, record)
    )
    return web.json_response({**activity.counts(runner), "progress": progress})


async def health(request: web.Request) -> web.Response:
    """The server's state; 503 when its database file is lost or no process worker can be
    started."""
    runner, hub = request.app[RUNNER], request.app[HUB]
    workers = runner.pool_health()
    store_problem = request.app[STORE].file_problem
    node = request.app[CORE].node  # None on the memory engine
    if runner.closing:
        status = "shutting_down"
    elif store_problem:
        status = "store_lost"
    elif node is not None and not node.reachable:
        # It serves what it has (pages, its own streams) but cannot start or see the cluster's.
        status = "engine_unreachable"
    else:
        status = workers.status  # ok, degraded or failing
    return web.json_response(
        {
            "status": status,
            "store": store_problem or "ok",
            "queued": runner.queue_size,
            "running": runner.running_count,
            "uptime_seconds": round(time.monotonic() - request.app[STARTED_AT], 3),
            "streams": len(hub),
            "subscribers": hub.subscriber_count,
            "workers": workers.as_json(),
            # per kind: its limit, running, waiting, and whether a limit holds them back
            "limits": {kind: load.as_json() for kind, load in runner.limits().items()},
            # the loop's blocks and the collector's pauses; None with the watchdog off
            "loop": watchdog.stats() if (watchdog := request.app[WATCHDOG]) else None,
            # where the nodes meet: memory, or Redis and whether this node reaches it
            "engine": node.status() if node is not None else {"kind": "memory"},
        },
        # What a load balancer or a monitor acts on: this server cannot do its work.
        status=503 if status in ("failing", "store_lost") else 200,
    )

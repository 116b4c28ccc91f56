"""The JSON API: start, list, read, cancel and follow tasks from scripts.

Errors are JSON `{"error": <short code>, "detail": <message>}` with the status that fits: 400 a
bad body or arguments, 401/403 authentication and permission, 404 an unknown task, 409 a task
that has finished or a stream id still in use, 413 a body over the limit, 503 shutting down.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from taskcast.errors import RunnerClosedError, StreamBusyError, TaskSpecError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.registry import ArgumentError, Registry
from taskcast.spec import build_spec
from taskcast.web.jsonview import record_json
from taskcast.web.keys import BASE, CHANNEL_PATH, HUB, RUNNER, STORE, local_path
from taskcast.web.security import POLICY, user_of

logger = logging.getLogger(__name__)

REGISTRY: Final = web.AppKey("taskcast_registry", Registry)
STARTED_AT: Final = web.AppKey("taskcast_started_at", float)
MAX_LIMIT = 200
START_FIELDS = frozenset({"name", "arguments", "task_publish_id"})


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.extra = status, error, detail, extra


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer under /api/ is JSON, errors included; a bug is a logged 500."""
    if not local_path(request).startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        body = {"error": exc.error, "detail": exc.detail, **exc.extra}
        return web.json_response(body, status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.status == 101:
            raise
        error = exc.reason.lower().replace(" ", "_")
        return web.json_response(
            {"error": error, "detail": exc.text or exc.reason}, status=exc.status
        )
    except Exception:
        logger.exception("API %s %s failed", request.method, request.path)
        return web.json_response(
            {"error": "internal_error", "detail": "the server failed; see its log"}, status=500
        )


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


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(400, "bad_request", f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _status_param(request: web.Request) -> TaskStatus | None:
    text = request.query.get("status")
    if not text:
        return None
    try:
        return TaskStatus(text)
    except ValueError:
        choices = ", ".join(status.value for status in TaskStatus)
        raise ApiError(400, "bad_request", f"status must be one of {choices}") from None


def visible_record(request: web.Request) -> TaskRecord:
    """The task named in the URL, if it exists and this user may see it."""
    task_id = request.match_info["id"]
    record = request.app[RUNNER].get(task_id)
    if record is None or not request.app[POLICY].can_see(user_of(request), record):
        raise ApiError(404, "not_found", f"no task {task_id!r}")
    return record


def _publish_id(value: Any) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(400, "bad_request", "task_publish_id must be a string or a whole number")
    text = str(value)
    if not 0 < len(text) <= 100 or not all(c.isalnum() or c in "_.:-" for c in text):
        raise ApiError(
            400,
            "bad_request",
            "task_publish_id must be 1 to 100 letters, digits, '_', '.', ':' or '-'",
        )
    return value


def start_registered(
    request: web.Request, name: Any, arguments: Any, publish_id: Any
) -> TaskRecord:
    """Start a registered task for this request's user; shared by the API and the start form."""
    if not isinstance(name, str) or not name:
        raise ApiError(400, "bad_request", "name must be the name of a registered task")
    if not isinstance(arguments, dict):
        raise ApiError(400, "bad_request", "arguments must be a JSON object")
    publish_id = _publish_id(publish_id)
    user = user_of(request)
    try:
        task, kwargs = request.app[REGISTRY].bind(name, arguments)
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except ArgumentError as exc:
        raise ApiError(400, "bad_arguments", str(exc)) from None
    if not request.app[POLICY].can_start(user, name):
        raise ApiError(403, "forbidden", f"you may not start {name}")
    if publish_id is not None:
        if task.group is None:
            raise ApiError(
                400, "bad_request", f"{name} has no stream: task_publish_id does not apply"
            )
        kwargs["task_publish_id"] = publish_id
    runner = request.app[RUNNER]
    try:
        # q_options={} sends every argument to the function, even one named like an option.
        spec = build_spec(task.func, (), kwargs, q_options={})
        task_id = runner.submit(dataclasses.replace(spec, started_by=user))
    except StreamBusyError as exc:
        raise ApiError(409, "stream_busy", str(exc), running=exc.task_id) from None
    except RunnerClosedError as exc:
        raise ApiError(503, "shutting_down", str(exc)) from None
    except TaskSpecError as exc:
        raise ApiError(400, "bad_arguments", str(exc)) from None
    record = runner.get(task_id)
    assert record is not None
    return record


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
    limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    status = _status_param(request)
    filters = {name: request.query.get(name) or None for name in ("group", "func", "started_by")}
    policy, user = request.app[POLICY], user_of(request)
    owner = policy.only_started_by(user)
    if owner is not None:
        filters["started_by"] = owner
    store = request.app[STORE]

    def read() -> tuple[list[TaskRecord], int]:
        records = store.list_tasks(status=status, limit=limit, offset=offset, **filters)
        return records, store.count_tasks(status=status, **filters)

    loop = request.app[RUNNER].loop
    records, total = await loop.run_in_executor(None, read)
    visible = [record_json(r, request, detail=False) for r in records if policy.can_see(user, r)]
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


async def task_events(request: web.Request) -> web.Response:
    """The task's stream as JSON, for clients without websockets (poll with `after`)."""
    record = visible_record(request)
    after = _int_param(request, "after", 0, 0, 10**12)
    limit = _int_param(request, "limit", 1000, 1, 10_000)
    stream = request.app[HUB].get(record.stream_id) if record.stream_id else None
    if stream is not None and stream.run_id == record.id:
        events = [(e.seq, e.data_json) for e in stream.history(after)[:limit]]
        finished = stream.end is not None
    else:
        store = request.app[STORE]
        events = await request.app[RUNNER].loop.run_in_executor(
            None, store.events, record.id, after, limit
        )
        finished = record.status.is_final
    current = request.app[RUNNER].get(record.id) or record
    return web.json_response(
        {
            "id": record.id,
            "stream_id": record.stream_id,
            "events": [{"seq": seq, "data": json.loads(data)} for seq, data in events],
            "next_after": events[-1][0] if events else after,
            "finished": finished,
            "status": current.status.value,
        }
    )


async def registry(request: web.Request) -> web.Response:
    policy, user = request.app[POLICY], user_of(request)
    tasks = [t.as_json() for t in request.app[REGISTRY] if policy.can_start(user, t.name)]
    return web.json_response({"tasks": tasks})


async def health(request: web.Request) -> web.Response:
    runner, hub = request.app[RUNNER], request.app[HUB]
    return web.json_response(
        {
            "status": "shutting_down" if runner.closing else "ok",
            "queued": runner.queue_size,
            "running": runner.running_count,
            "uptime_seconds": round(time.monotonic() - request.app[STARTED_AT], 3),
            "streams": len(hub),
            "subscribers": hub.subscriber_count,
        }
    )

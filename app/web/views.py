"""Thin page views: the recent-task list, one task, and the seed's demo."""

from __future__ import annotations

import secrets

import aiohttp_jinja2
from aiohttp import web

from app.errors import StreamBusyError, TaskSpecError
from app.records import TaskStatus
from app.runner import short_error
from app.spec import build_spec
from app.web.channel import PATH as CHANNEL_PATH
from app.web.keys import RUNNER, STORE


@aiohttp_jinja2.template("index.html")
async def index(request: web.Request) -> dict[str, object]:
    status_text = request.query.get("status")
    try:
        status = TaskStatus(status_text) if status_text else None
    except ValueError:
        raise web.HTTPBadRequest(text=f"unknown status {status_text!r}") from None
    tasks = request.app[STORE].list_tasks(status=status, limit=100)
    runner = request.app[RUNNER]
    return {
        "tasks": tasks,
        "queued": runner.queue_size,
        "running": runner.running_count,
        "statuses": list(TaskStatus),
        "status": status_text or "",
    }


@aiohttp_jinja2.template("task.html")
async def task_page(request: web.Request) -> dict[str, object]:
    record = request.app[RUNNER].get(request.match_info["id"])
    if record is None:
        raise web.HTTPNotFound(text=f"no task {request.match_info['id']!r}")
    return {"task": record, "channel": CHANNEL_PATH, "short_error": short_error(record.error)}


@aiohttp_jinja2.template("demo.html")
async def demo(request: web.Request) -> dict[str, object]:
    publish_id = secrets.token_hex(4)
    return {
        "channel": CHANNEL_PATH,
        "stream_id": f"demo__{publish_id}",
        "start_href": f"/demo/start?task_publish_id={publish_id}",
    }


async def demo_start(request: web.Request) -> web.Response:
    """Start the seed's `test_task` for the demo page (the element GETs this once it is open)."""
    publish_id = request.query.get("task_publish_id", "")
    if not publish_id.isalnum() or len(publish_id) > 32:
        raise web.HTTPBadRequest(text="task_publish_id must be 1 to 32 letters or digits")
    try:
        spec = build_spec("tasks.test_task", (), {"task_publish_id": publish_id, "param": 123})
        task_id = request.app[RUNNER].submit(spec)
    except TaskSpecError as exc:
        raise web.HTTPInternalServerError(text=str(exc)) from exc
    except StreamBusyError as exc:
        return web.json_response(
            {"error": "busy", "detail": str(exc), "id": exc.task_id}, status=409
        )
    return web.json_response({"id": task_id, "stream_id": f"demo__{publish_id}"})

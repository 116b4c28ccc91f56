"""One task's page, `/tasks/{id}`, like a CI run's page, and what it offers: Cancel, Run again
(Retry for a failure), and downloads of its output, result and traceback.

The page shows its own run's output: server-rendered as text (so it is there without
JavaScript), then taken over by `<ptig-task run_id=...>`, which follows that run and no other
(`run_replay`). Every view here is access-checked like the page: a task this user may not see
is a 404, whatever is asked of it.
"""

from __future__ import annotations

import json
import logging
import pprint
from typing import Any

from aiohttp import web

from taskcast.event_text import Output, output_of
from taskcast.failure import explain
from taskcast.functions import dotted_path
from taskcast.jsonable import as_json
from taskcast.records import TaskRecord, TaskStatus
from taskcast.registry import RESERVED, RegisteredTask
from taskcast.web.errors import ApiError
from taskcast.web.keys import BASE, POLICY, REGISTRY, RUNNER, STORE
from taskcast.web.pages import page
from taskcast.web.security import user_of
from taskcast.web.services import start_registered, visible_record

logger = logging.getLogger(__name__)

#: statuses whose "run again" is a retry
RETRY_STATUSES = frozenset({TaskStatus.FAILED, TaskStatus.TIMED_OUT, TaskStatus.INTERRUPTED})


def _record(request: web.Request) -> TaskRecord:
    try:
        return visible_record(request)
    except ApiError:
        raise web.HTTPNotFound(text=f"no task {request.match_info['id']!r}") from None


def _pretty(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=False)


def _registered(request: web.Request, record: TaskRecord) -> RegisteredTask | None:
    """The registered task `record` ran, if this user may start it."""
    policy, user = request.app[POLICY], user_of(request)
    for task in request.app[REGISTRY]:
        if record.func in (task.name, dotted_path(task.func)):
            return task if policy.can_start(user, task.name) else None
    return None


def again_arguments(task: RegisteredTask, record: TaskRecord) -> dict[str, Any] | None:
    """The record's arguments as the keywords of `task`, None when positional ones cannot be
    named (more of them than the signature has)."""
    arguments = {key: value for key, value in record.kwargs.items() if key not in RESERVED}
    if len(record.args) > len(task.parameters):
        return None
    for parameter, value in zip(task.parameters, record.args, strict=False):
        arguments[parameter.name] = value
    return arguments


async def _output(request: web.Request, record: TaskRecord) -> Output:
    """The run's stored events as text (empty for a task without a stream)."""
    if record.stream_id is None:
        return Output([], "")
    events = await request.app[RUNNER].loop.run_in_executor(
        None, request.app[STORE].events, record.id
    )
    return output_of(events)


@page("task.html")
async def task_page(request: web.Request) -> dict[str, Any]:
    record = _record(request)
    policy, user = request.app[POLICY], user_of(request)
    registered = _registered(request, record)
    again = None
    if record.status.is_final and registered and again_arguments(registered, record) is not None:
        again = "Retry" if record.status in RETRY_STATUSES else "Run again"
    output = await _output(request, record)
    return {
        "task": record,
        "failure": explain(record.error) if not record.success else None,
        "result": _pretty(record.result) if record.success else None,
        "arguments": _pretty({"args": list(record.args), "kwargs": record.kwargs}),
        "cancellable": not record.status.is_final and policy.can_cancel(user, record),
        "again": again,
        "output": output,
    }


async def cancel(request: web.Request) -> web.Response:
    """The Cancel button: stop the task, then show its page again."""
    record = _record(request)
    if not request.app[POLICY].can_cancel(user_of(request), record):
        raise web.HTTPForbidden(text="you may not cancel this task")
    request.app[RUNNER].cancel(record.id)  # False when it has just finished: the page says so
    raise web.HTTPSeeOther(f"{request.app[BASE]}/tasks/{record.id}")


async def run_again(request: web.Request) -> web.Response:
    """Run again / Retry: the same registered function with the same arguments (and the same
    publish id, so its output goes to the same stream), then the new task's page."""
    record = _record(request)
    task = _registered(request, record)
    arguments = again_arguments(task, record) if task is not None else None
    if task is None or arguments is None:
        raise web.HTTPForbidden(text="this task cannot be started again from here")
    publish_id = record.kwargs.get("task_publish_id")
    try:
        started = start_registered(request, task.name, arguments, publish_id)
    except ApiError as exc:
        logger.info("run again of %s refused: %s", record.id, exc.detail)
        refusal = web.HTTPConflict if exc.status == 409 else web.HTTPBadRequest
        raise refusal(text=exc.detail) from None
    logger.info("task %s started again as %s", record.id, started.id)
    raise web.HTTPSeeOther(f"{request.app[BASE]}/tasks/{started.id}")


def _download(text: str, filename: str, content_type: str) -> web.Response:
    return web.Response(
        text=text,
        content_type=content_type,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def output_txt(request: web.Request) -> web.Response:
    """The run's output as text: its events' lines, then what it printed; 404 without either."""
    record = _record(request)
    output = await _output(request, record)
    parts = ["\n".join(output.lines)] if output.lines else []
    if record.output:
        parts.append(record.output.rstrip("\n"))
    if not parts:
        raise web.HTTPNotFound(text=f"task {record.id} has no output")
    return _download("\n".join(parts) + "\n", f"{record.id}-output.txt", "text/plain")


async def result_json(request: web.Request) -> web.Response:
    """The return value as JSON (values JSON cannot carry as their repr); 404 unless it
    succeeded."""
    record = _record(request)
    if not record.success:
        raise web.HTTPNotFound(text=f"task {record.id} has no result ({record.status.value})")
    body = json.dumps(as_json(record.result), indent=2, ensure_ascii=False) + "\n"
    return _download(body, f"{record.id}-result.json", "application/json")


async def traceback_txt(request: web.Request) -> web.Response:
    """The whole error text of a task that did not succeed (every frame); 404 without one."""
    record = _record(request)
    if record.success or not record.error:
        raise web.HTTPNotFound(text=f"task {record.id} has no traceback")
    return _download(record.error.rstrip("\n") + "\n", f"{record.id}-traceback.txt", "text/plain")

"""What the API, the console and the demo pages share: finding a task this user may see,
listing tasks, starting a registered task, and the registry itself. Views stay thin."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from aiohttp import web

from taskcast.errors import (
    EngineUnavailableError,
    RunnerClosedError,
    StreamBusyError,
    TaskSpecError,
)
from taskcast.records import TaskRecord, TaskStatus
from taskcast.registry import ArgumentError, RegisteredTask
from taskcast.spec import build_spec
from taskcast.web.errors import ApiError
from taskcast.web.keys import POLICY, REGISTRY, RUNNER, STORE
from taskcast.web.security import user_of


def startable(request: web.Request) -> list[RegisteredTask]:
    """The registered tasks this request's user may start."""
    policy, user = request.app[POLICY], user_of(request)
    return [task for task in request.app[REGISTRY] if policy.can_start(user, task.name)]


def visible_record(request: web.Request) -> TaskRecord:
    """The task named in the URL, if it exists and this user may see it."""
    task_id = request.match_info["id"]
    record = request.app[RUNNER].get(task_id)
    if record is None or not request.app[POLICY].can_see(user_of(request), record):
        raise ApiError(404, "not_found", f"no task {task_id!r}")
    return record


async def list_visible(
    request: web.Request,
    *,
    limit: int,
    offset: int,
    status: TaskStatus | None,
    group: str | None,
    func: str | None,
    started_by: str | None = None,
) -> tuple[list[TaskRecord], int]:
    """A page of tasks, newest first, that this user may see, and how many match in all.

    A policy that shows people only their own tasks overrides `started_by`. The store is read
    in the loop's executor, so a slow disk never stalls the loop.
    """
    policy, user = request.app[POLICY], user_of(request)
    owner = policy.only_started_by(user)
    filters: dict[str, Any] = {
        "status": status,
        "group": group,
        "func": func,
        "started_by": owner if owner is not None else started_by,
    }
    store = request.app[STORE]

    def read() -> tuple[list[TaskRecord], int]:
        records = store.list_tasks(limit=limit, offset=offset, **filters)
        return records, store.count_tasks(**filters)

    records, total = await request.app[RUNNER].loop.run_in_executor(None, read)
    return [record for record in records if policy.can_see(user, record)], total


#: the most characters a task_publish_id may have, and the characters besides letters and digits
PUBLISH_ID_MAX = 100
PUBLISH_ID_PUNCTUATION = "_.:-"


def _publish_id(value: Any) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ApiError(400, "bad_request", "task_publish_id must be a string or a whole number")
    text = str(value)
    if not 0 < len(text) <= PUBLISH_ID_MAX or not all(
        c.isalnum() or c in PUBLISH_ID_PUNCTUATION for c in text
    ):
        raise ApiError(
            400,
            "bad_request",
            f"task_publish_id must be 1 to {PUBLISH_ID_MAX} letters, digits, '_', '.', ':' or '-'",
        )
    return value


def new_publish_id() -> str:
    """A publish id no other start has used: the stream of a start that names none."""
    return uuid.uuid4().hex[:12]


def start_registered(
    request: web.Request, name: Any, arguments: Any, publish_id: Any
) -> TaskRecord:
    """Start a registered task for this request's user; shared by the API and the start form.

    Its errors are the API's own (a stream in use is "stream_busy", with the running task's id;
    arguments the task cannot take are "bad_arguments"), so they are raised as ApiError here.

    A `@publish` task started without a publish id gets a new one: Pytigon's rule would stream
    it to the bare group, so a second start would find that stream busy and fail on a field
    nobody filled in. `async_task` in code keeps Pytigon's rule; this is the console's and the
    API's choice.
    """
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
    if publish_id is not None and task.group is None:
        raise ApiError(400, "bad_request", f"{name} has no stream: task_publish_id does not apply")
    if task.group is not None:
        kwargs["task_publish_id"] = publish_id if publish_id is not None else new_publish_id()
    runner = request.app[RUNNER]
    try:
        # Every argument goes to the function, even one named like an option.
        spec = build_spec(task.func, (), kwargs, keyword_options=False)
        task_id = runner.submit(dataclasses.replace(spec, started_by=user))
    except StreamBusyError as exc:
        raise ApiError(409, "stream_busy", str(exc), running=exc.task_id) from None
    except RunnerClosedError as exc:
        raise ApiError(503, "shutting_down", str(exc)) from None
    except EngineUnavailableError as exc:
        raise ApiError(503, "engine_unavailable", str(exc)) from None
    except TaskSpecError as exc:
        raise ApiError(400, "bad_arguments", str(exc)) from None
    record = runner.get(task_id)
    assert record is not None
    return record

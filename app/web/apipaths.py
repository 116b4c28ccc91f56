"""The operations of the JSON API for its OpenAPI document: every path under /api/ with its
methods, parameters and answers, and the answers every operation shares.

Limits, enums and field names come from the modules that enforce them, so the table cannot drift
from them; the shapes of the bodies are named here and written in `taskcast.web.apischemas`. To
add an operation: one entry in `paths`, and its schema in `apischemas`.
"""

from __future__ import annotations

from typing import Any

from taskcast.web import activity, api, apischemas, params
from taskcast.web.apischemas import ref
from taskcast.web.schedules import ACTIONS

TAG_TASKS, TAG_SCHEDULES, TAG_SERVER = "tasks", "schedules", "server"


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, schema: str = "Error") -> dict[str, Any]:
    return _json(description, ref(schema))


def _parameter(where: str, name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    required = where == "path"
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema,
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return _parameter("query", name, description, schema)


def _number(low: int, high: int, default: int) -> dict[str, Any]:
    """A query number as `taskcast.web.params.whole_number` reads it: ASCII digits in a range."""
    return {"type": "integer", "minimum": low, "maximum": high, "default": default}


FILTER = {"type": "string", "maxLength": params.MAX_FILTER_CHARS}
TASK_ID = _parameter("path", "id", "the task's id (or its name)", {"type": "string"})
SCHEDULE = _parameter("path", "name", "the schedule's name", {"type": "string"})


def _operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Any],
    *,
    parameters: tuple[dict[str, Any], ...] = (),
    body: dict[str, Any] | None = None,
    public: bool = False,
    writes: bool = False,
) -> dict[str, Any]:
    """One operation, with the answers every route shares: 401 without authentication (unless
    public), 403 for a cross-site browser write, 421 for a host name the server does not answer
    to, and any other error (405, a logged 500) in the same JSON shape."""
    shared: dict[str, Any] = {
        "421": _error("`misdirected_request`: the Host is not a name the server answers to")
    }
    if not public:
        shared["401"] = _error("`unauthorized`: authentication is on and the request has none")
    if writes:
        shared["403"] = _error("`forbidden`: a browser's request from another origin")
    merged = {**shared, **responses, "default": _error("any other error, in the same shape")}
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "responses": dict(sorted(merged.items())),
    }
    if parameters:
        operation["parameters"] = list(parameters)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": body}}
    if public:
        operation["security"] = []
    return operation


def paths() -> dict[str, dict[str, Any]]:
    """Every operation under /api/, by path and method: the routes of `taskcast.web.routes`."""
    bad_query = _error("`bad_request`: a query parameter out of its range")
    no_task = _error("`not_found`: no such task, or not one this user may see")
    no_schedule = _error("`not_found`: no schedule of that name")
    may_not_manage = _error("`forbidden`: a cross-site request, or the policy says no")
    return {
        "/api/tasks": {
            "post": _operation(
                "startTask",
                TAG_TASKS,
                "Start a registered task",
                {
                    "201": {
                        **_json("the task, queued", ref("StartedTask")),
                        "headers": {
                            "Location": {
                                "description": "the task's `api_url`",
                                "schema": {"type": "string"},
                            }
                        },
                    },
                    "400": _error(
                        "`bad_request`: not a JSON object, unknown fields, a bad "
                        "task_publish_id; `bad_arguments`: arguments the signature refuses"
                    ),
                    "403": _error("`forbidden`: a cross-site request, or the policy says no"),
                    "404": _error("`not_found`: no registered task of that name"),
                    "409": _error("`stream_busy`: the stream has a run going", "StreamBusy"),
                    "413": _error("`request_entity_too_large`: over `max_body_bytes`"),
                    "503": _error("`shutting_down`: the server accepts no new tasks"),
                },
                body={"schema": ref("StartRequest")},
                writes=True,
            ),
            "get": _operation(
                "listTasks",
                TAG_TASKS,
                "List tasks, newest first",
                {"200": _json("a page of tasks", ref("TaskList")), "400": bad_query},
                parameters=(
                    _query("status", "only tasks in this state", {"enum": apischemas.STATUSES}),
                    _query("group", "only tasks of this group", FILTER),
                    _query("func", "only tasks of this function (dotted path)", FILTER),
                    _query("started_by", "only tasks this user started", FILTER),
                    _query("limit", "tasks per page", _number(1, api.MAX_LIMIT, api.DEFAULT_LIMIT)),
                    _query("offset", "tasks to skip", _number(0, api.MAX_OFFSET, 0)),
                ),
            ),
        },
        "/api/tasks/{id}": {
            "get": _operation(
                "getTask",
                TAG_TASKS,
                "Read a task's whole record",
                {"200": _json("the task", ref("Task")), "404": no_task},
                parameters=(TASK_ID,),
            ),
        },
        "/api/tasks/{id}/cancel": {
            "post": _operation(
                "cancelTask",
                TAG_TASKS,
                "Cancel a queued or running task",
                {
                    "200": _json("cancelled", ref("Cancelled")),
                    "403": _error("`forbidden`: a cross-site request, or the policy says no"),
                    "404": no_task,
                    "409": _error("`finished`: the task has already ended", "Finished"),
                },
                parameters=(TASK_ID,),
                writes=True,
            ),
        },
        "/api/tasks/{id}/events": {
            "get": _operation(
                "taskEvents",
                TAG_TASKS,
                "A page of the task's stream, for clients without websockets",
                {
                    "200": _json("events after `after`", ref("Events")),
                    "400": bad_query,
                    "404": no_task,
                },
                parameters=(
                    TASK_ID,
                    _query(
                        "after",
                        "the last `seq` already seen (the previous page's `next_after`)",
                        _number(0, api.MAX_EVENTS_AFTER, 0),
                    ),
                    _query(
                        "limit",
                        f"events per page (and at most {api.MAX_EVENTS_PAGE_BYTES} bytes of data)",
                        _number(1, api.MAX_EVENTS_LIMIT, api.DEFAULT_EVENTS_LIMIT),
                    ),
                ),
            ),
        },
        "/api/registry": {
            "get": _operation(
                "registry",
                TAG_TASKS,
                "The tasks this user may start, with their parameters",
                {"200": _json("the registered tasks", ref("Registry"))},
            ),
        },
        "/api/health": {
            "get": _operation(
                "health",
                TAG_SERVER,
                "The server's state, for monitors and load balancers",
                {
                    "200": _json("ok, degraded or shutting down", ref("Health")),
                    "503": _json("failing or store_lost: take the server out", ref("Health")),
                },
                public=True,
            ),
        },
        "/api/activity": {
            "get": _operation(
                "activity",
                TAG_TASKS,
                "Running and queued counts, why tasks wait, and running tasks' progress",
                {
                    "200": _json("what is going on now", ref("Activity")),
                    "400": _error(f"`bad_request`: more than {activity.MAX_IDS} ids"),
                },
                parameters=(
                    {
                        **_query(
                            "id",
                            "a task whose progress to give if it is running (repeat for more)",
                            {"type": "array", "items": {"type": "string"}},
                        ),
                        "explode": True,
                    },
                ),
            ),
        },
        "/api/schedules": {
            "get": _operation(
                "listSchedules",
                TAG_SCHEDULES,
                "List schedules, by name",
                {"200": _json("the schedules", ref("ScheduleList"))},
            ),
        },
        "/api/schedules/{name}": {
            "get": _operation(
                "getSchedule",
                TAG_SCHEDULES,
                "Read a schedule, with its skipped runs",
                {"200": _json("the schedule", ref("ScheduleDetail")), "404": no_schedule},
                parameters=(SCHEDULE,),
            ),
            "delete": _operation(
                "deleteSchedule",
                TAG_SCHEDULES,
                "Delete a schedule (a run going on goes on)",
                {
                    "200": _json("deleted", ref("ScheduleDeleted")),
                    "403": may_not_manage,
                    "404": no_schedule,
                },
                parameters=(SCHEDULE,),
                writes=True,
            ),
        },
        "/api/schedules/{name}/{action}": {
            "post": _operation(
                "scheduleAction",
                TAG_SCHEDULES,
                "Pause, resume or run a schedule now",
                {
                    "200": _json("paused or resumed", ref("Schedule")),
                    "202": _json("run now: the task started", ref("ScheduleRun")),
                    "400": _error("`bad_request`: an unknown action, or a run that cannot start"),
                    "403": may_not_manage,
                    "404": no_schedule,
                    "409": _json(
                        "`busy`: a run still going; `stream_busy`: its stream in use",
                        {"oneOf": [ref("Busy"), ref("StreamBusy")]},
                    ),
                    "503": _error("`shutting_down`: the server accepts no new tasks"),
                },
                parameters=(
                    SCHEDULE,
                    _parameter(
                        "path",
                        "action",
                        "what to do",
                        {"enum": [a for a in ACTIONS if a != "delete"]},
                    ),
                ),
                writes=True,
            ),
        },
        "/api/feed": {
            "get": _operation(
                "feed",
                TAG_SERVER,
                "The console's live list (a websocket)",
                {
                    "101": {
                        "description": 'a websocket: `{"tasks": [TaskSummary...], "counts": '
                        '{"running": N, "queued": N}}` frames, or `{"reload": true}` before '
                        "closing with 1013 when too far behind"
                    },
                    "400": _error("`bad_request`: not a websocket upgrade"),
                    "403": _error("`forbidden`: a page from another origin"),
                },
            ),
        },
        "/api/openapi.json": {
            "get": _operation(
                "openapi",
                TAG_SERVER,
                "This document",
                {"200": _json("the OpenAPI 3.1 document", {"type": "object"})},
            ),
        },
    }

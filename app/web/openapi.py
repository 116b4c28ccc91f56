"""The JSON API described as an OpenAPI 3.1 document, served at `/api/openapi.json`.

The paths and their answers are written here, next to the handlers they describe; limits, enums
and field names come from the modules that enforce them, so the document cannot drift from them.
The shapes of the bodies are in `taskcast.web.apischemas`. tests/web/test_openapi.py calls every
operation and checks each answer against this document, and fails for a route under /api/ that
is not in it. To add an operation: one entry in `_paths`, and its schema in `apischemas`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from typing import Any

from aiohttp import web

from taskcast.web import api, apischemas, params
from taskcast.web.apischemas import ref
from taskcast.web.keys import BASE, POLICY
from taskcast.web.schedules import ACTIONS
from taskcast.web.security import COOKIE, TokenAccess

VERSION = importlib.metadata.version("taskcast")
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


def _paths() -> dict[str, dict[str, Any]]:
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
                        "description": 'a websocket: `{"tasks": [TaskSummary...]}` frames, or '
                        '`{"reload": true}` before closing with 1013 when too far behind'
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


def _security(base: str, token_auth: bool) -> tuple[dict[str, Any], list[dict[str, list[str]]]]:
    """The schemes, and the requirement every operation but the public ones has."""
    if not token_auth:
        return {}, []
    schemes = {
        "bearerToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "the server's token (`--token`, `TASKCAST_TOKEN`, `auth_token`)",
        },
        "sessionCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": COOKIE,
            "description": f"the session `POST {base}/login` opens for a browser",
        },
    }
    return schemes, [{"bearerToken": []}, {"sessionCookie": []}]


def document(base: str, token_auth: bool) -> dict[str, Any]:
    """The OpenAPI document of an app mounted at `base` ("" at the root), with or without the
    shared token."""
    schemes, security = _security(base, token_auth)
    components: dict[str, Any] = {"schemas": apischemas.schemas()}
    if schemes:
        components["securitySchemes"] = schemes
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "Taskcast",
            "version": VERSION,
            "summary": "Start, list, follow and cancel background tasks; manage schedules.",
            "description": 'Every answer is JSON, errors included: `{"error": <short code>, '
            '"detail": <message>}`. Task streams are also on the Pytigon websocket channel '
            "(see the README). Without a token the server asks for no authentication; an "
            "embedding app's own access policy may ask for its own.",
        },
        "paths": _paths(),
        "components": components,
        "tags": [{"name": TAG_TASKS}, {"name": TAG_SCHEDULES}, {"name": TAG_SERVER}],
    }
    if base:
        doc["servers"] = [{"url": base}]
    if security:
        doc["security"] = security
    return doc


@functools.lru_cache(maxsize=8)
def document_text(base: str, token_auth: bool) -> str:
    return json.dumps(document(base, token_auth), indent=1)


async def openapi_json(request: web.Request) -> web.Response:
    token_auth = isinstance(request.app[POLICY], TokenAccess)
    return web.Response(
        text=document_text(request.app[BASE], token_auth), content_type="application/json"
    )

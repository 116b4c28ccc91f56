"""The JSON bodies of the API as JSON Schema (draft 2020-12, OpenAPI 3.1's dialect).

Objects list every field the handlers write and refuse others (`additionalProperties: false`),
so a field added to an answer without being described here fails the tests. Enums come from
the code that makes the values.
"""

from __future__ import annotations

import typing
from typing import Any

from taskcast.records import TaskStatus
from taskcast.runtime.pool import PoolStatus
from taskcast.schedules.entry import CATCH_UP, OVERLAP
from taskcast.spec import Kind
from taskcast.web import services

STRING: dict[str, Any] = {"type": "string"}
TEXT_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
TIME_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
ANY: dict[str, Any] = {}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def closed(properties: dict[str, Any], *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with exactly these fields, all required but `optional`."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }


STATUSES = [status.value for status in TaskStatus]

#: a task as lists show it (`taskcast.web.jsonview.record_fields` with detail=False)
SUMMARY: dict[str, Any] = {
    "id": STRING,
    "name": STRING,
    "func": {"type": "string", "description": "the function's dotted path"},
    "group": TEXT_OR_NULL,
    "stream_id": TEXT_OR_NULL,
    "kind": {"enum": list(typing.get_args(Kind))},
    "status": {"enum": STATUSES},
    "enqueued": TIME_OR_NULL,
    "started": TIME_OR_NULL,
    "stopped": TIME_OR_NULL,
    "time_taken": {"type": ["number", "null"], "description": "seconds from start to stop"},
    "attempt_count": COUNT,
    "schedule": TEXT_OR_NULL,
    "started_by": TEXT_OR_NULL,
    "url": {"type": "string", "description": "the task's console page"},
    "channel": {"type": ["string", "null"], "description": "the websocket of its stream"},
}
#: what the whole record adds
DETAIL: dict[str, Any] = {
    "args": {"type": "array"},
    "kwargs": {"type": "object"},
    "result": {"description": "the return value; a value JSON cannot carry as its repr"},
    "error": {"type": ["string", "null"], "description": "the error, with the traceback"},
    "output": {"type": "string", "description": "the last 64 KiB a process task printed"},
}

ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "a short code: `bad_request`, `not_found`..."},
        "detail": {"type": "string", "description": "what was wrong, for people"},
    },
    "required": ["error", "detail"],
}


def _error_with(code: str, **fields: Any) -> dict[str, Any]:
    """The error shape with a fixed code and the fields that code carries."""
    return {
        "allOf": [ref("Error")],
        "properties": {"error": {"const": code}, **fields},
        "required": list(fields),
    }


SCHEDULE: dict[str, Any] = {
    "name": STRING,
    "func": STRING,
    "rule": {"type": "string", "description": "when it runs, in words"},
    "paused": BOOLEAN,
    "finished": {"type": "boolean", "description": "it has no run left"},
    "repeats": {"type": "integer", "description": "runs left, -1 forever"},
    "catch_up": {"enum": list(CATCH_UP)},
    "overlap": {"enum": list(OVERLAP)},
    "backlog": COUNT,
    "origin": {"type": "string", "description": '"schedule", or "init_schedule:<module>"'},
    "next_run": TIME_OR_NULL,
    "last_run": TIME_OR_NULL,
    "last_task": TEXT_OR_NULL,
    "last_status": {"enum": [*STATUSES, "skipped", None]},
    "last_skip": TEXT_OR_NULL,
    "running_task": TEXT_OR_NULL,
}


def schemas() -> dict[str, Any]:
    """Every named schema of the document."""
    publish_id = {
        "description": "for @publish tasks (null: none): letters, digits and "
        f"{services.PUBLISH_ID_PUNCTUATION}; the stream id becomes `<group>__<task_publish_id>`. "
        "Without one a @publish task gets a new id, so two starts never share a stream",
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": services.PUBLISH_ID_MAX},
            {"type": "integer"},
            {"type": "null"},
        ],
    }
    parameter = closed(
        {
            "name": STRING,
            "required": BOOLEAN,
            "default": {"description": "null for a required parameter"},
            "type": {"type": ["string", "null"], "description": "the annotation"},
        }
    )
    registered = closed(
        {
            "name": STRING,
            "summary": STRING,
            "parameters": {"type": "array", "items": parameter},
            "accepts_more": {"type": "boolean", "description": "the function takes **kwargs"},
            "publish_group": TEXT_OR_NULL,
        }
    )
    workers = closed(
        {
            "status": {"enum": list(typing.get_args(PoolStatus))},
            "size": COUNT,
            "alive": COUNT,
            "busy": COUNT,
            "replacing": COUNT,
            "failed_starts": COUNT,
            "last_error": TEXT_OR_NULL,
        }
    )
    kind_load = closed(
        {
            "limit": COUNT,
            "running": COUNT,
            "waiting": COUNT,
            "held": {"type": "boolean", "description": "its waiting tasks wait for a limit"},
        }
    )
    milliseconds: dict[str, Any] = {"type": "number", "minimum": 0}
    collector = closed(
        {
            "collections": {
                "type": "array",
                "items": COUNT,
                "minItems": 3,
                "maxItems": 3,
                "description": "garbage collections per generation (0, 1, 2) since start",
            },
            "pause_ms": milliseconds,
            "longest_ms": milliseconds,
            "longest_generation": {"type": ["integer", "null"], "minimum": 0, "maximum": 2},
            "longest_full_ms": milliseconds,
            "thresholds": {"type": "array", "items": COUNT, "minItems": 3, "maxItems": 3},
            "frozen": {"type": "integer", "minimum": 0, "description": "objects frozen"},
        }
    )
    engine = {
        "oneOf": [
            closed({"kind": {"const": "memory"}}),
            closed(
                {
                    "kind": {"const": "redis"},
                    "url": {"type": "string", "description": "without its password"},
                    "node": {"type": "string", "description": "this node's id"},
                    "reachable": BOOLEAN,
                    "last_error": TEXT_OR_NULL,
                }
            ),
        ]
    }
    loop = {
        "oneOf": [
            closed({"blocks": COUNT, "longest_block_ms": milliseconds, "collector": collector}),
            {"type": "null", "description": "the watchdog is off (loop_block_warning 0)"},
        ]
    }
    return {
        "Error": ERROR,
        "Busy": _error_with("busy"),
        "StreamBusy": _error_with("stream_busy", running={"type": "string"}),
        "Finished": _error_with("finished", task_status={"enum": STATUSES}),
        "StartRequest": closed(
            {
                "name": {"type": "string", "minLength": 1},
                "arguments": {"type": "object", "default": {}},
                "task_publish_id": publish_id,
            },
            optional=("arguments", "task_publish_id"),
        ),
        "TaskSummary": closed(SUMMARY),
        "Task": closed({**SUMMARY, **DETAIL}),
        "StartedTask": closed({**SUMMARY, "websocket_href": STRING, "api_url": STRING}),
        "TaskList": closed(
            {
                "tasks": {"type": "array", "items": ref("TaskSummary")},
                "total": COUNT,
                "limit": COUNT,
                "offset": COUNT,
            }
        ),
        "Cancelled": closed({"id": STRING, "cancelled": {"const": True}}),
        "Events": closed(
            {
                "id": STRING,
                "stream_id": TEXT_OR_NULL,
                "events": {
                    "type": "array",
                    "items": closed({"seq": COUNT, "data": ANY}),
                },
                "next_after": COUNT,
                "finished": BOOLEAN,
                "status": {"enum": STATUSES},
            }
        ),
        "Registry": closed({"tasks": {"type": "array", "items": registered}}),
        "Health": closed(
            {
                "status": {
                    "enum": [
                        "ok",
                        "degraded",
                        "failing",
                        "shutting_down",
                        "store_lost",
                        "engine_unreachable",
                    ],
                },
                "store": {"type": "string", "description": '"ok", or what happened to the file'},
                "queued": COUNT,
                "running": COUNT,
                "uptime_seconds": {"type": "number", "minimum": 0},
                "streams": COUNT,
                "subscribers": COUNT,
                "workers": workers,
                "limits": closed({kind: kind_load for kind in typing.get_args(Kind)}),
                "loop": loop,
                "engine": engine,
            }
        ),
        "Activity": closed(
            {
                "running": COUNT,
                "queued": COUNT,
                "waiting": {
                    "type": ["string", "null"],
                    "description": "why queued tasks wait, in words; null when none waits",
                },
                "progress": {
                    "type": "object",
                    "description": "by task id, the latest progress of the running tasks asked",
                    "additionalProperties": closed(
                        {
                            "value": {"type": ["number", "null"]},
                            "max": {"type": "number"},
                            "text": STRING,
                        }
                    ),
                },
            }
        ),
        "Schedule": closed(SCHEDULE),
        "ScheduleDetail": closed(
            {
                **SCHEDULE,
                "skips": {
                    "type": "array",
                    "items": closed({"due": TIME_OR_NULL, "reason": STRING}),
                },
            }
        ),
        "ScheduleList": closed(
            {
                "schedules": {"type": "array", "items": ref("Schedule")},
                "timezone": STRING,
                "running": {"type": "boolean", "description": "the scheduler is on"},
            }
        ),
        "ScheduleRun": closed({"id": STRING, "schedule": ref("Schedule")}),
        "ScheduleDeleted": closed({"deleted": STRING}),
    }

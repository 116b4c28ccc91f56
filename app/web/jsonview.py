"""Task records as JSON for the API and the console's live feed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web

from taskcast.records import TaskRecord
from taskcast.registry import jsonable
from taskcast.web.keys import BASE, CHANNEL_PATH


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def record_json(record: TaskRecord, request: web.Request, detail: bool = True) -> dict[str, Any]:
    """The record's fields; results that JSON cannot carry are given as their repr."""
    return record_fields(record, request.app[BASE], request.app[CHANNEL_PATH], detail)


def record_fields(
    record: TaskRecord, base: str, channel_path: str, detail: bool = True
) -> dict[str, Any]:
    """`record_json` for code that has the app's base path and channel path but no request."""
    body: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "func": record.func,
        "group": record.group,
        "stream_id": record.stream_id,
        "kind": record.kind,
        "status": record.status.value,
        "enqueued": _time(record.enqueued),
        "started": _time(record.started),
        "stopped": _time(record.stopped),
        "time_taken": record.time_taken(),
        "attempt_count": record.attempt_count,
        "schedule": record.schedule,
        "started_by": record.started_by,
        "url": f"{base}/tasks/{record.id}",
        "channel": channel_path if record.stream_id else None,
    }
    if detail:
        body.update(
            args=jsonable(list(record.args)),
            kwargs=jsonable(record.kwargs),
            result=jsonable(record.result),
            error=record.error,
            output=record.output,
        )
    return body


def summary_json(base: str, channel_path: str, record: TaskRecord) -> str:
    """The record as a task list shows it (no arguments, result or output), as JSON text."""
    return json.dumps(record_fields(record, base, channel_path, detail=False))

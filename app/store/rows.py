"""How task records become rows of the SQLite store, and rows records again.

The schema, and the conversions of the values it holds: datetimes as whole microseconds since
the epoch (UTC: exact, and they sort), results and arguments pickled, args that will not pickle
stored as their repr. A run's args and kwargs are pickled once for the whole run (`PickledArgs`)
and every save of its record reuses those bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from taskcast.errors import StoreError
from taskcast.records import TaskRecord, TaskStatus

logger = logging.getLogger(__name__)

#: pickle protocol of stored results and arguments
PROTOCOL = 5
REPR_LIMIT = 10_000  # args stored as their repr are cut to this many characters
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NEVER = datetime.min.replace(tzinfo=UTC)

# Datetimes are stored as integer microseconds since the epoch (UTC): exact, and they sort.
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, func TEXT NOT NULL,
    args BLOB NOT NULL, kwargs BLOB NOT NULL, group_name TEXT, stream_id TEXT,
    kind TEXT NOT NULL, status TEXT NOT NULL, enqueued INTEGER, started INTEGER, stopped INTEGER,
    result BLOB NOT NULL, error TEXT, attempt_count INTEGER NOT NULL, output TEXT NOT NULL,
    schedule TEXT, started_by TEXT, hook TEXT
);
CREATE INDEX IF NOT EXISTS tasks_schedule ON tasks (schedule, enqueued);
CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name, enqueued);
CREATE INDEX IF NOT EXISTS tasks_stream_id ON tasks (stream_id, enqueued);
CREATE INDEX IF NOT EXISTS tasks_group ON tasks (group_name, enqueued);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, stopped);
CREATE INDEX IF NOT EXISTS tasks_enqueued ON tasks (enqueued);
"""
COLUMNS = (
    "id, name, func, args, kwargs, group_name, stream_id, kind, status, enqueued, "
    "started, stopped, result, error, attempt_count, output, schedule, started_by, hook"
)
# An upsert, not INSERT OR REPLACE, keeps the rowid: it breaks ties of `enqueued` in listings.
UPSERT = (
    f"INSERT INTO tasks ({COLUMNS}) VALUES ({', '.join('?' * 19)}) ON CONFLICT (id) "
    "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS.split(", ")[1:])
)
NEWEST = "ORDER BY enqueued DESC, rowid DESC"


def to_us(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:  # records hold UTC by contract; do not fail on a naive one
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // timedelta(microseconds=1)


def from_us(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


@dataclasses.dataclass(frozen=True, slots=True)
class PickledArgs:
    """A run's args and kwargs, each pickled once (None: it does not pickle).

    Made when a process task's call is checked, or at a run's first save, and handed to every
    later save, so the arguments are pickled once per run rather than at each change of status
    on the event loop. The store still applies its size limit to each save.
    """

    args: bytes | None
    kwargs: bytes | None


def pickled_or_none(value: Any) -> bytes | None:
    try:
        return pickle.dumps(value, protocol=PROTOCOL)
    except Exception:
        return None


def pickle_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> PickledArgs:
    return PickledArgs(pickled_or_none(args), pickled_or_none(kwargs))


def blob_or_repr(
    value: Any, blob: bytes | None, wrap: Callable[[str], Any], limit: int
) -> tuple[Any, bytes]:
    """`value` and its pickle `blob`; if it did not pickle or is too large, `wrap(repr(value))`
    and that pickled."""
    if blob is not None and len(blob) <= limit:
        return value, blob
    try:
        text = repr(value)[:REPR_LIMIT]
    except Exception:
        text = f"<unrepresentable {type(value).__name__}>"
    wrapped = wrap(text)
    return wrapped, pickle.dumps(wrapped, protocol=PROTOCOL)


def unpickle(blob: bytes, task_id: str, field: str, fallback: Callable[[str], Any]) -> Any:
    # A value whose class has gone away must not make every listing of the tasks fail.
    try:
        return pickle.loads(blob)
    except Exception as exc:
        logger.warning("store: cannot unpickle the %s of task %s: %s", field, task_id, exc)
        return fallback(f"<{field} could not be unpickled: {exc}>")


def status_value(status: TaskStatus | None) -> str | None:
    return None if status is None else TaskStatus(status).value


def task_row(
    record: TaskRecord, max_value_bytes: int, pickled: PickledArgs
) -> tuple[TaskRecord, tuple[Any, ...]]:
    """The record as a row of `tasks`, and the record a read of that row will return (args and
    kwargs that cannot be pickled, or are too large, become their repr). `pickled` holds the
    record's args and kwargs already pickled. Raises StoreError if the result cannot be pickled
    or is too large."""
    try:
        result = pickle.dumps(record.result, protocol=PROTOCOL)
    except Exception as exc:
        raise StoreError(
            f"task {record.id}: its result cannot be pickled: {type(exc).__name__}: {exc}"
        ) from exc
    if len(result) > max_value_bytes:
        raise StoreError(
            f"task {record.id}: its pickled result is {len(result)} bytes, "
            f"more than the limit of {max_value_bytes}"
        )
    args, args_blob = blob_or_repr(record.args, pickled.args, lambda text: (text,), max_value_bytes)
    kwargs, kwargs_blob = blob_or_repr(
        record.kwargs, pickled.kwargs, lambda text: {"__repr__": text}, max_value_bytes
    )
    if args is not record.args or kwargs is not record.kwargs:
        record = record.replace(args=args, kwargs=kwargs)
    row = (
        record.id,
        record.name,
        record.func,
        args_blob,
        kwargs_blob,
        record.group,
        record.stream_id,
        record.kind,
        record.status.value,
        to_us(record.enqueued),
        to_us(record.started),
        to_us(record.stopped),
        result,
        record.error,
        record.attempt_count,
        record.output,
        record.schedule,
        record.started_by,
        record.hook,
    )
    return record, row


def record_from_row(row: Sequence[Any]) -> TaskRecord:
    task_id = row[0]
    return TaskRecord(
        id=task_id,
        name=row[1],
        func=row[2],
        args=unpickle(row[3], task_id, "args", lambda text: (text,)),
        kwargs=unpickle(row[4], task_id, "kwargs", lambda text: {"__repr__": text}),
        group=row[5],
        stream_id=row[6],
        kind=row[7],
        status=TaskStatus(row[8]),
        enqueued=from_us(row[9]),
        started=from_us(row[10]),
        stopped=from_us(row[11]),
        result=unpickle(row[12], task_id, "result", lambda text: None),
        error=row[13],
        attempt_count=row[14],
        output=row[15],
        schedule=row[16],
        started_by=row[17],
        hook=row[18],
    )

"""Task records: the status of a task and everything `fetch()` returns about it.

A record is also Django Q's `Task`: `name`, `func`, `hook`, `args`, `kwargs`, `result`, `group`,
`started`, `stopped`, `success`, `attempt_count` and `time_taken()` mean what they mean there.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import Any


class TaskStatus(enum.StrEnum):
    """Where a task is in its life. The last five are final."""

    #: accepted, waiting for a free slot (concurrency limit or process workers)
    QUEUED = "queued"
    #: its code is executing now
    RUNNING = "running"
    #: returned normally; `result` holds the return value
    SUCCESS = "success"
    #: raised (or its worker died); `error` holds the reason and the traceback
    FAILED = "failed"
    #: stopped by `cancel()` or by the shutdown of the server
    CANCELLED = "cancelled"
    #: stopped because it ran longer than its timeout
    TIMED_OUT = "timed_out"
    #: was queued or running when a previous server process stopped without finishing it
    INTERRUPTED = "interrupted"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(TaskStatus) - {TaskStatus.QUEUED, TaskStatus.RUNNING}
#: the final statuses Django Q calls failures (`success` False): every end but success
FAILURE_STATUSES = FINAL_STATUSES - {TaskStatus.SUCCESS}


@dataclasses.dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task as stored; every state change makes a new record with `dataclasses.replace`."""

    id: str
    name: str
    func: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    group: str | None = None
    stream_id: str | None = None
    kind: str = "async"
    status: TaskStatus = TaskStatus.QUEUED
    enqueued: datetime | None = None
    started: datetime | None = None
    stopped: datetime | None = None
    #: the return value; for a task that ended any other way, its error text, as in Django Q
    result: Any = None
    error: str | None = None
    attempt_count: int = 0
    output: str = ""
    #: the schedule whose run this is, None for a task started directly
    schedule: str | None = None
    #: who started it, as the host app's authentication names them (None: anonymous)
    started_by: str | None = None
    #: the dotted path of the hook called when it ends, None without one (Django Q's `hook`)
    hook: str | None = None

    def __post_init__(self) -> None:
        # Django Q keeps a failed task's error text in `result`; every way of ending other
        # than success (failed, timed out, cancelled, interrupted) is a failure there.
        if self.result is None and self.error is not None and self.status in FAILURE_STATUSES:
            object.__setattr__(self, "result", self.error)

    @property
    def success(self) -> bool:
        """Django Q's boolean: True only for a task that returned normally."""
        return self.status is TaskStatus.SUCCESS

    def time_taken(self) -> float | None:
        """Seconds from start to stop (Django Q's method), None until the task has both."""
        if self.started is None or self.stopped is None:
            return None
        return (self.stopped - self.started).total_seconds()

    def __str__(self) -> str:
        return self.name or self.id

    def replace(self, **changes: Any) -> TaskRecord:
        """A copy with `changes`, as `dataclasses.replace` makes it (`__post_init__` included)
        at about 60 % of its cost: every state change of every task makes one."""
        new = object.__new__(TaskRecord)
        for name in _FIELDS:
            object.__setattr__(new, name, getattr(self, name))
        for name, value in changes.items():
            if name not in _FIELD_SET:
                raise TypeError(f"TaskRecord has no field {name!r}")
            object.__setattr__(new, name, value)
        new.__post_init__()
        return new

    def __repr__(self) -> str:
        return (
            f"<TaskRecord {self.id[:8]} {self.name!r} {self.func} {self.status.value}"
            f"{' stream=' + self.stream_id if self.stream_id else ''}>"
        )


_FIELDS = tuple(field.name for field in dataclasses.fields(TaskRecord))
_FIELD_SET = frozenset(_FIELDS)

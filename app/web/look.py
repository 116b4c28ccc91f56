"""How a task's state looks on every page: one label, icon and tone per status.

The record, the list, the output box and the live updates all take their words and colours
from here (the browser gets the same table as JSON in `base.html`), so a state never reads
one way in one place and another way in the next.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from taskcast.records import TaskStatus


@dataclass(frozen=True, slots=True)
class StatusLook:
    #: the word people read
    label: str
    #: a symbol shown beside the word (never alone: the word carries the meaning)
    icon: str
    #: the colour family in `taskcast.css`: neutral, info, ok, fail or warn
    tone: str


STATUS_LOOK: dict[TaskStatus, StatusLook] = {
    TaskStatus.QUEUED: StatusLook("Queued", "◷", "neutral"),
    TaskStatus.RUNNING: StatusLook("Running", "●", "info"),
    TaskStatus.SUCCESS: StatusLook("Succeeded", "✓", "ok"),
    TaskStatus.FAILED: StatusLook("Failed", "✕", "fail"),
    TaskStatus.CANCELLED: StatusLook("Cancelled", "⊘", "warn"),
    TaskStatus.TIMED_OUT: StatusLook("Timed out", "⏱", "warn"),
    TaskStatus.INTERRUPTED: StatusLook("Interrupted", "⚠", "fail"),
}


def status_look(status: TaskStatus | str) -> StatusLook:
    """The look of `status` (a `TaskStatus` or its value)."""
    return STATUS_LOOK[TaskStatus(status)]


def status_table() -> dict[str, dict[str, str]]:
    """Every status's look by value, for the browser."""
    return {status.value: asdict(look) for status, look in STATUS_LOOK.items()}

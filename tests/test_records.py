"""A task record's copies (taskcast.records.TaskRecord.replace)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from taskcast.records import TaskRecord, TaskStatus

RECORD = TaskRecord(
    id="a" * 32,
    name="nightly",
    func="jobs.import_rows",
    args=(1, "x"),
    kwargs={"k": [1, 2]},
    group="imports",
    stream_id="imports__7",
    kind="process",
    enqueued=datetime(2026, 12, 7, tzinfo=UTC),
)

CHANGES: list[dict[str, Any]] = [
    {},
    {"status": TaskStatus.RUNNING, "started": datetime(2026, 12, 7, 1, tzinfo=UTC)},
    {"status": TaskStatus.SUCCESS, "result": {"rows": 12}, "output": "done\n"},
    {"status": TaskStatus.FAILED, "error": "KeyError: 'row 12'"},
    {"status": TaskStatus.TIMED_OUT, "error": "timed out after 5 s", "attempt_count": 3},
    {"group": None, "hook": "jobs.done", "started_by": "ola"},
]


@pytest.mark.parametrize("changes", CHANGES)
def test_a_copy_is_what_dataclasses_replace_makes(changes: dict[str, Any]) -> None:
    copy = RECORD.replace(**changes)
    assert copy == dataclasses.replace(RECORD, **changes)
    assert copy is not RECORD and RECORD.status is TaskStatus.QUEUED  # the original is as it was


def test_a_failure_copied_without_a_result_takes_its_error_as_the_result() -> None:
    # Django Q keeps a failed task's error in `result`: the copy's __post_init__ runs too.
    failed = RECORD.replace(status=TaskStatus.FAILED, error="boom")
    assert failed.result == "boom" and not failed.success


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(TypeError, match="no field 'colour'"):
        RECORD.replace(colour="red")

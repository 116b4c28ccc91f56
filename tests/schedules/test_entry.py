"""The catch-up policy as pure code: which runs of a due schedule start, which one is skipped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from taskcast.schedules.entry import MISFIRE_GRACE, ScheduleEntry, due_runs
from taskcast.schedules.helpers import in_minute_intervals

DUE = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def every_minute(**fields: Any) -> ScheduleEntry:
    rule = in_minute_intervals(1)
    return ScheduleEntry("job", "tests.support.sample_tasks.note_run", rule, next_run=DUE, **fields)


def test_a_run_within_the_grace_is_on_time_and_keeps_the_overlap_policy() -> None:
    plan = due_runs(every_minute(overlap="queue"), DUE + MISFIRE_GRACE / 2, UTC)
    assert plan.runs == ((DUE, True),) and plan.skip is None and plan.next_run == DUE + MINUTE


def test_catch_up_once_starts_one_run_and_moves_on_from_now() -> None:
    plan = due_runs(every_minute(), DUE + 10 * MINUTE, UTC)
    assert plan.runs == ((DUE, False),) and plan.skip is None
    assert plan.next_run == DUE + 11 * MINUTE


def test_catch_up_skip_records_the_missed_run_and_starts_none() -> None:
    plan = due_runs(every_minute(catch_up="skip"), DUE + 10 * MINUTE, UTC)
    assert plan.runs == () and plan.next_run == DUE + 11 * MINUTE
    assert plan.skip is not None and plan.skip[0] == DUE and "catch_up='skip'" in plan.skip[1]


def test_catch_up_all_queues_up_to_the_backlog_and_skips_the_rest() -> None:
    plan = due_runs(every_minute(catch_up="all", backlog=3), DUE + 10 * MINUTE, UTC)
    assert plan.runs == tuple((DUE + n * MINUTE, True) for n in range(3))
    assert plan.skip is not None and plan.skip[0] == DUE + 3 * MINUTE
    assert plan.next_run == DUE + 11 * MINUTE

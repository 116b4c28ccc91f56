"""Pytigon's helpers compute the next run as pytigon-lib's schschedule does.

The table was made by running pytigon-lib's own helpers on each "now" (a naive local time there,
UTC here). Where pytigon-lib has a defect, the test below the table says what Taskcast does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskcast.schedules.helpers import (
    daily,
    hourly,
    in_minute_intervals,
    in_second_intervals,
    monthly,
    parse_spec,
)
from taskcast.schedules.rules import Rule, ScheduleError

HELPERS = {
    "daily": daily,
    "hourly": hourly,
    "monthly": monthly,
    "in_minute_intervals": in_minute_intervals,
    "in_second_intervals": in_second_intervals,
}

# (the helper call, now, the first run pytigon-lib gives)
UPSTREAM = [
    ("daily(at=8)", "2024-05-06 07:00", "2024-05-06 08:00"),
    ("daily(at=8)", "2024-05-06 09:00", "2024-05-07 08:00"),
    ("daily(at='22:07:00')", "2024-05-06 23:00", "2024-05-07 22:07"),
    ("daily(at='6:00:00,18:00:00')", "2024-05-06 12:00", "2024-05-06 18:00"),
    ("daily(at=12, in_weekdays=[2])", "2024-05-06 00:00", "2024-05-08 12:00"),
    ("daily(at=12, in_weekdays=(1,2,3,4,5))", "2024-05-11 13:00", "2024-05-14 12:00"),
    ("daily(at=[3, '4:30:00'])", "2024-05-06 03:30", "2024-05-06 04:30"),
    ("hourly(at=15)", "2024-05-06 10:20", "2024-05-06 11:15"),
    ("hourly(at=15)", "2024-05-06 10:10", "2024-05-06 10:15"),
    ("hourly(at='15:30:00')", "2024-05-06 10:20", "2024-05-06 11:15:30"),
    ("hourly(at=7, in_weekdays=range(1,6))", "2024-05-06 10:20", "2024-05-07 00:07"),
    ("hourly(at=7, in_weekdays=range(0,5))", "2024-05-11 10:20", "2024-05-13 00:07"),
    ("in_minute_intervals(1)", "2024-05-06 10:03:20", "2024-05-06 10:04"),
    ("in_minute_intervals(1, at=30)", "2024-05-06 10:03:20", "2024-05-06 10:04"),
    ("in_minute_intervals(1, at='0:30:0')", "2024-05-06 10:03:20", "2024-05-06 10:03:30"),
    ("in_minute_intervals(1, at='0:30:0')", "2024-05-06 10:03:40", "2024-05-06 10:04:30"),
    ("in_minute_intervals(1, at='0:10:0,0:40:0')", "2024-05-06 10:03:20", "2024-05-06 10:03:40"),
    ("in_minute_intervals(5)", "2024-05-06 10:05", "2024-05-06 10:05"),
    ("monthly(day=15, at=12)", "2024-01-10 00:00", "2024-01-15 12:00"),
    ("monthly(day=5, at=10)", "2024-01-15 00:00", "2024-02-05 10:00"),
    ("monthly(day=31, at='22:07:00')", "2024-01-31 23:00", "2024-02-29 22:07"),
    ("monthly(day=1, at=12, in_months=[3])", "2024-01-01 00:00", "2024-03-01 12:00"),
    ("monthly(day=1, at=12, in_weekdays=[0])", "2024-03-01 00:00", "2024-03-04 12:00"),
]


def first_run(rule: Rule, now: str) -> datetime:
    # A run due right now counts, as the scheduler's first run does.
    after = datetime.fromisoformat(now).replace(tzinfo=UTC) - timedelta(microseconds=1)
    found = rule.next_after(after, UTC)
    assert found is not None
    return found


@pytest.mark.parametrize(("call", "now", "expected"), UPSTREAM)
def test_the_helpers_give_pytigons_first_run(call: str, now: str, expected: str) -> None:
    rule = eval(call, {"__builtins__": {"range": range}}, HELPERS)
    assert first_run(rule, now) == datetime.fromisoformat(expected).replace(tzinfo=UTC)
    # The same call written as a schedule string gives the same run.
    assert first_run(parse_spec(call), now) == first_run(rule, now)


def test_minute_intervals_read_at_as_minutes_and_seconds_like_pytigon() -> None:
    # Pytigon reads each item of `at` as "MM:SS" and uses its seconds, so several items run
    # several times a minute, and a bare number (minutes) leaves the second at 0.
    assert first_run(in_minute_intervals(1, at="0:45"), "2024-05-06 10:03:50") == datetime(
        2024, 5, 6, 10, 4, 45, tzinfo=UTC
    )
    assert first_run(in_minute_intervals(1, at=[30]), "2024-05-06 10:03:20") == datetime(
        2024, 5, 6, 10, 4, tzinfo=UTC
    )


def test_schedule_strings_take_range_as_pytigons_do() -> None:
    rule = parse_spec("hourly(at=7,in_weekdays=range(1,6), in_hours=range(3,5))")
    assert rule == hourly(at=7, in_weekdays=[1, 2, 3, 4, 5], in_hours=[3, 4])
    assert parse_spec("s(in_weekdays=(range(1, 2)))") == in_second_intervals(in_weekdays=[1])
    assert parse_spec("d(at=range(8, 10))") == daily(at=[8, 9])


@pytest.mark.parametrize(
    "text",
    [
        "h(in_hours=range(10000000))",
        "h(in_hours=range('a'))",
        "h(in_hours=range(1, 2, 3, 4))",
        "h(in_hours=range(stop=3))",
        "h(in_hours=list(range(3)))",
        "h(in_hours=__import__('os'))",
    ],
)
def test_a_range_or_call_that_is_not_a_plain_range_is_refused(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_spec(text)


def test_tz_local_is_the_schedulers_zone_and_a_named_zone_is_kept() -> None:
    assert daily(at=8, tz="local") == daily(at=8)
    assert monthly(day=2, tz="local") == monthly(day=2)
    warsaw = daily(at=8, tz="Europe/Warsaw")
    # 08:00 in Warsaw (CEST, UTC+2) whatever zone the scheduler computes in.
    found = warsaw.next_after(datetime(2024, 5, 6, tzinfo=UTC), ZoneInfo("America/New_York"))
    assert found == datetime(2024, 5, 6, 6, tzinfo=UTC)
    assert parse_spec("M(day=1, tz='Europe/Warsaw')") == monthly(day=1, tz="Europe/Warsaw")
    with pytest.raises(ScheduleError, match="tz"):
        daily(tz="Mars/Olympus")


def test_every_schedule_string_of_pytigons_demo_module_is_read() -> None:
    for text in [
        "in_minute_intervals(1)",
        "in_second_intervals(3)",
        "hourly(at='2,3')",
        "daily(at='22:07')",
        "monthly(day=1, at='22:07')",
        "daily(at='22:07', in_weekdays=(1, 2, 3, 4, 5))",
        "hourly(at=7,in_weekdays=range(1,6), in_hours=range(3,5))",
        "in_second_intervals(in_weekdays=range(1,2), in_hours=range(3,5))",
        "M(day=31, at='22:07')",
        "M",
    ]:
        parse_spec(text)


def test_pytigons_defects_are_not_copied() -> None:
    # pytigon-lib moves a monthly run outside in_months to the first listed month, even when a
    # later one comes first (April -> next March instead of June), and in_hours to the next day.
    assert first_run(monthly(day=1, at=12, in_months=[3, 6]), "2024-04-02 00:00") == datetime(
        2024, 6, 1, 12, tzinfo=UTC
    )
    assert first_run(hourly(at=0, in_hours=[3, 4]), "2024-05-06 01:00") == datetime(
        2024, 5, 6, 3, tzinfo=UTC
    )


def test_the_helpers_are_importable_where_pytigons_are() -> None:
    from taskcast import schschedule

    assert schschedule.daily is daily and schschedule.in_minute_intervals is in_minute_intervals

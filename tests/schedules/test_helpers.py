"""Next-run computation of every kind of schedule, with an injected "now" and a time zone."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from taskcast.schedules.calendar import Schedule, django_q_rule, rule_from_json
from taskcast.schedules.helpers import (
    daily,
    hourly,
    in_minute_intervals,
    in_second_intervals,
    monthly,
    parse_spec,
)
from taskcast.schedules.rules import Cron, Rule, ScheduleError

WARSAW = ZoneInfo("Europe/Warsaw")
# Europe/Warsaw in 2024: 02:00 CET jumps to 03:00 CEST on 31 March (01:00 UTC);
# 03:00 CEST falls back to 02:00 CET on 27 October (01:00 UTC).
SPRING_EVE = datetime(2024, 3, 30, 12, tzinfo=UTC)
FALL_EVE = datetime(2024, 10, 26, 12, tzinfo=UTC)


def local(text: str, tz: tzinfo = WARSAW, fold: int = 0) -> datetime:
    """A wall-clock time in `tz` as a UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=tz, fold=fold).astimezone(UTC)


def runs(rule: Rule, after: datetime, count: int, tz: tzinfo = WARSAW) -> list[datetime]:
    found: list[datetime] = []
    while len(found) < count:
        following = rule.next_after(found[-1] if found else after, tz)
        if following is None:
            break
        found.append(following)
    return found


def shown(instants: list[datetime], tz: tzinfo = WARSAW) -> list[str]:
    """Instants as the clock shows them, with the zone's abbreviation."""
    return [moment.astimezone(tz).strftime("%m-%d %H:%M:%S %Z") for moment in instants]


def runs_within(rule: Rule, start: datetime, end: datetime, tz: tzinfo = WARSAW) -> list[datetime]:
    found: list[datetime] = []
    while (following := rule.next_after(found[-1] if found else start, tz)) and following < end:
        found.append(following)
    return found


async def test_daily_at_accepts_an_hour_a_time_a_list_and_a_comma_list() -> None:
    after = local("2024-05-06 12:00")  # a Monday
    assert shown(runs(daily(at=22), after, 1)) == ["05-06 22:00:00 CEST"]
    assert shown(runs(daily(at="22:30"), after, 1)) == ["05-06 22:30:00 CEST"]
    assert shown(runs(daily(at="7:05:30"), after, 1)) == ["05-07 07:05:30 CEST"]
    expected = ["05-06 20:00:00 CEST", "05-07 08:15:00 CEST", "05-07 20:00:00 CEST"]
    assert shown(runs(daily(at="8:15,20"), after, 3)) == expected
    assert shown(runs(daily(at=["8:15", 20]), after, 3)) == expected


async def test_daily_runs_only_on_the_given_weekdays_counted_from_monday() -> None:
    after = local("2024-05-08 23:00")  # a Wednesday, after the day's run
    rule = daily(at="6:00", in_weekdays=[0, 4])  # Mondays and Fridays
    assert shown(runs(rule, after, 3)) == [
        "05-10 06:00:00 CEST",
        "05-13 06:00:00 CEST",
        "05-17 06:00:00 CEST",
    ]


async def test_hourly_at_is_minutes_past_the_hour_within_in_hours() -> None:
    after = local("2024-05-06 09:20")
    rule = hourly(at="15:30", in_hours=[9, 10])
    assert shown(runs(rule, after, 3)) == [
        "05-06 10:15:30 CEST",
        "05-07 09:15:30 CEST",
        "05-07 10:15:30 CEST",
    ]
    assert shown(runs(hourly(at="5,35"), after, 2)) == [
        "05-06 09:35:00 CEST",
        "05-06 10:05:00 CEST",
    ]


async def test_hourly_period_counts_hours_from_midnight_and_weekdays_restrict_days() -> None:
    after = local("2024-05-10 19:00")  # a Friday
    rule = hourly(period=6, at=0, in_weekdays=[4])
    assert shown(runs(rule, after, 2)) == ["05-17 00:00:00 CEST", "05-17 06:00:00 CEST"]
    assert shown(runs(hourly(period=5), local("2024-05-06 19:30"), 2)) == [
        "05-06 20:00:00 CEST",
        "05-07 00:00:00 CEST",
    ]


async def test_minute_intervals_count_from_midnight_with_at_as_the_second() -> None:
    after = local("2024-05-06 10:07:00")
    assert shown(runs(in_minute_intervals(15, at="0:30"), after, 2)) == [
        "05-06 10:15:30 CEST",
        "05-06 10:30:30 CEST",
    ]
    rule = in_minute_intervals(20, in_hours=[8])
    assert shown(runs(rule, local("2024-05-06 08:41"), 2)) == [
        "05-07 08:00:00 CEST",
        "05-07 08:20:00 CEST",
    ]


async def test_second_intervals_count_from_midnight_within_in_hours() -> None:
    after = local("2024-05-06 10:00:07")
    assert shown(runs(in_second_intervals(10), after, 2)) == [
        "05-06 10:00:10 CEST",
        "05-06 10:00:20 CEST",
    ]
    rule = in_second_intervals(30, in_hours=[7], in_weekdays=[1])
    assert shown(runs(rule, local("2024-05-06 07:59:59"), 1)) == ["05-07 07:00:00 CEST"]


async def test_monthly_day_31_runs_on_the_last_day_of_shorter_months_and_on_leap_days() -> None:
    rule = monthly(day=31, at="8:00")
    assert [
        moment.astimezone(WARSAW).date().isoformat()
        for moment in runs(rule, local("2024-01-01"), 5)
    ] == [
        "2024-01-31",
        "2024-02-29",
        "2024-03-31",
        "2024-04-30",
        "2024-05-31",
    ]
    february = runs(monthly(day=30), local("2025-02-01"), 1)
    assert shown(february) == ["02-28 00:00:00 CET"]


async def test_monthly_in_months_and_a_day_moved_forward_to_an_allowed_weekday() -> None:
    quarterly = monthly(day=1, at=9, in_months=[1, 4, 7, 10])
    assert shown(runs(quarterly, local("2024-02-10"), 2)) == [
        "04-01 09:00:00 CEST",
        "07-01 09:00:00 CEST",
    ]
    # 1 June 2024 is a Saturday: the first working day at or after the 1st is Monday the 3rd.
    working = monthly(day=1, at="7:30", in_weekdays=[0, 1, 2, 3, 4])
    assert shown(runs(working, local("2024-05-15"), 2)) == [
        "06-03 07:30:00 CEST",
        "07-01 07:30:00 CEST",
    ]
    # 31 August 2024 is a Saturday: moved into September, and still found from 1 September.
    last_working = monthly(day=31, in_weekdays=[0, 1, 2, 3, 4])
    assert shown(runs(last_working, local("2024-09-01 12:00"), 1)) == ["09-02 00:00:00 CEST"]


async def test_daily_runs_once_on_spring_forward_night_when_the_clock_jumps() -> None:
    assert shown(runs(daily(at="2:30"), SPRING_EVE, 2)) == [
        "03-31 03:00:00 CEST",
        "04-01 02:30:00 CEST",
    ]
    assert shown(runs(daily(at="1:30"), SPRING_EVE, 2)) == [
        "03-31 01:30:00 CET",
        "04-01 01:30:00 CEST",
    ]


async def test_daily_runs_once_on_fall_back_night_at_the_first_of_the_repeated_times() -> None:
    assert shown(runs(daily(at="2:30"), FALL_EVE, 2)) == [
        "10-27 02:30:00 CEST",
        "10-28 02:30:00 CET",
    ]
    # Asked during the repeated hour, after the run: the next one is tomorrow, not in an hour.
    second_pass = local("2024-10-27 02:10", fold=1)
    assert shown(runs(daily(at="2:30"), second_pass, 1)) == ["10-28 02:30:00 CET"]


async def test_hourly_runs_every_real_hour_across_both_changes() -> None:
    rule = hourly(at=30)
    spring = runs_within(rule, local("2024-03-31 00:00"), local("2024-04-01 00:00"))
    fall = runs_within(rule, local("2024-10-27 00:00"), local("2024-10-28 00:00"))
    assert len(spring) == 23 and len(fall) == 25
    for day in (spring, fall):
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(day))
    assert "10-27 02:30:00 CET" in shown(fall) and "10-27 02:30:00 CEST" in shown(fall)
    every_minute = runs_within(
        in_minute_intervals(1), local("2024-10-27 01:00"), local("2024-10-27 04:00")
    )
    assert len(every_minute) == 4 * 60 - 1  # four real hours, strictly after the start


async def test_django_q_elapsed_types_count_real_time_from_next_run() -> None:
    anchor = local("2024-03-31 01:20")
    minutes = django_q_rule(Schedule.MINUTES, anchor, WARSAW, 50, None)
    assert shown(runs(minutes, anchor - timedelta(seconds=1), 3)) == [
        "03-31 01:20:00 CET",
        "03-31 03:10:00 CEST",
        "03-31 04:00:00 CEST",
    ]
    hourly_q = django_q_rule("H", anchor, WARSAW, None, None)
    assert runs(hourly_q, anchor, 2) == [anchor + timedelta(hours=1), anchor + timedelta(hours=2)]
    once = django_q_rule("once", anchor, WARSAW, None, None)
    assert runs(once, anchor - timedelta(seconds=1), 3) == [anchor]


async def test_django_q_calendar_types_keep_the_wall_clock_time_across_dst() -> None:
    anchor = local("2024-03-25 09:00")  # a Monday, in winter time
    expectations = {
        Schedule.DAILY: ["03-25 09:00:00 CET", "03-26 09:00:00 CET", "03-27 09:00:00 CET"],
        Schedule.WEEKLY: ["03-25 09:00:00 CET", "04-01 09:00:00 CEST", "04-08 09:00:00 CEST"],
        Schedule.BIWEEKLY: ["03-25 09:00:00 CET", "04-08 09:00:00 CEST", "04-22 09:00:00 CEST"],
        Schedule.MONTHLY: ["03-25 09:00:00 CET", "04-25 09:00:00 CEST", "05-25 09:00:00 CEST"],
        Schedule.BIMONTHLY: ["03-25 09:00:00 CET", "05-25 09:00:00 CEST", "07-25 09:00:00 CEST"],
        Schedule.QUARTERLY: ["03-25 09:00:00 CET", "06-25 09:00:00 CEST", "09-25 09:00:00 CEST"],
        Schedule.YEARLY: ["03-25 09:00:00 CET", "03-25 09:00:00 CET", "03-25 09:00:00 CET"],
    }
    for schedule_type, expected in expectations.items():
        rule = django_q_rule(schedule_type, anchor, WARSAW, None, None)
        assert shown(runs(rule, anchor - timedelta(seconds=1), 3)) == expected, schedule_type


async def test_monthly_types_keep_the_anchor_day_and_yearly_keeps_leap_days() -> None:
    monthly_q = django_q_rule(Schedule.MONTHLY, local("2024-01-31 08:00"), WARSAW, None, None)
    dates = [
        m.astimezone(WARSAW).date().isoformat() for m in runs(monthly_q, local("2024-01-01"), 4)
    ]
    assert dates == ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30"]
    yearly = django_q_rule(Schedule.YEARLY, local("2024-02-29 08:00"), WARSAW, None, None)
    years = [m.astimezone(WARSAW).date().isoformat() for m in runs(yearly, local("2024-01-01"), 5)]
    assert years == ["2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"]


async def test_cron_expressions_follow_debian_cron_across_dst() -> None:
    weekdays = Cron("30 6 * * 1-5")
    assert shown(runs(weekdays, local("2024-05-10 07:00"), 2)) == [
        "05-13 06:30:00 CEST",
        "05-14 06:30:00 CEST",
    ]
    nightly = Cron("30 2 * * *")
    assert shown(runs(nightly, SPRING_EVE, 2)) == ["03-31 03:00:00 CEST", "04-01 02:30:00 CEST"]
    assert shown(runs(nightly, FALL_EVE, 2)) == ["10-27 02:30:00 CEST", "10-28 02:30:00 CET"]
    every_hour = runs_within(
        Cron("0 * * * *"), local("2024-10-27 00:30"), local("2024-10-27 04:30")
    )
    assert len(every_hour) == 5  # 01, 02 CEST, 02 CET, 03, 04
    via_django_q = django_q_rule(Schedule.CRON, SPRING_EVE, WARSAW, None, "0 12 1 * *")
    assert shown(runs(via_django_q, SPRING_EVE, 1)) == ["04-01 12:00:00 CEST"]


async def test_the_zone_decides_the_wall_clock() -> None:
    after = datetime(2024, 7, 1, 12, tzinfo=UTC)
    assert runs(daily(at=13), after, 1) == [datetime(2024, 7, 2, 11, tzinfo=UTC)]
    assert runs(daily(at=13), after, 1, UTC) == [datetime(2024, 7, 1, 13, tzinfo=UTC)]
    new_york = ZoneInfo("America/New_York")
    assert runs(daily(at=13), after, 1, new_york) == [datetime(2024, 7, 1, 17, tzinfo=UTC)]


async def test_pytigon_schedule_strings_are_parsed_not_evaluated() -> None:
    rule = parse_spec("d(at='22:30'); hourly(at=15, in_hours=[8])")
    after = local("2024-05-06 12:00")
    assert shown(runs(rule, after, 3)) == [
        "05-06 22:30:00 CEST",
        "05-07 08:15:00 CEST",
        "05-07 22:30:00 CEST",
    ]
    assert parse_spec("m") == in_minute_intervals()
    for bad in ("__import__('os').system('true')", "d(at=open('x'))", "x(1)", "d(at="):
        with pytest.raises(ScheduleError):
            parse_spec(bad)


async def test_rules_round_trip_through_json() -> None:
    anchor = local("2024-01-31 08:00")
    rules: list[Rule] = [
        daily(at="8,20:15", in_weekdays=[1]),
        hourly(period=2, at="5:30", in_hours=[2, 4]),
        monthly(day=31, at=7, in_months=[2], in_weekdays=[0]),
        in_minute_intervals(5, at=10),
        in_second_intervals(7, in_hours=[1]),
        parse_spec("d(at=1); s(30)"),
        Cron("*/5 * * * *"),
        *(django_q_rule(t, anchor, WARSAW, 5, None) for t in ("O", "I", "H", "D", "W", "M", "Y")),
    ]
    for rule in rules:
        assert rule_from_json(rule.to_json()) == rule


async def test_arguments_that_make_no_sense_are_refused_at_definition() -> None:
    mistakes: list[Callable[[], object]] = [
        lambda: daily(at="25:00"),
        lambda: daily(at="8:61"),
        lambda: daily(at="noon"),
        lambda: daily(at=[]),
        lambda: daily(in_weekdays=[7]),
        lambda: hourly(at="10:00:05"),
        lambda: hourly(period=5, in_hours=[3]),
        lambda: monthly(day=32),
        lambda: monthly(in_months=[0]),
        lambda: in_minute_intervals(0),
        lambda: in_second_intervals(period=True),
        lambda: django_q_rule("fortnightly", SPRING_EVE, UTC, None, None),
        lambda: django_q_rule(Schedule.MINUTES, SPRING_EVE, UTC, -5, None),
        lambda: django_q_rule(Schedule.CRON, SPRING_EVE, UTC, None, "61 * * * *"),
        lambda: django_q_rule(Schedule.CRON, SPRING_EVE, UTC, None, None),
    ]
    for mistake in mistakes:
        with pytest.raises(ScheduleError):
            mistake()

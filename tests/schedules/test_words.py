"""Schedule rules in words people use, exactly; and their raw form for the hover."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from taskcast.schedules.calendar import (
    DayTimes,
    Interval,
    MonthDay,
    Step,
    django_q_rule,
)
from taskcast.schedules.helpers import daily, hourly, in_minute_intervals, in_second_intervals
from taskcast.schedules.helpers import monthly as monthly_rule
from taskcast.schedules.rules import AnyOf, Cron, Every, InZone, Once, Rule
from taskcast.schedules.words import ordinal, raw, summary

WARSAW = zoneinfo.ZoneInfo("Europe/Warsaw")
ANCHOR = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)  # a Monday; 06:30 in Warsaw


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        # Pytigon's helpers
        (daily(at="6:00"), "every day at 06:00"),
        (daily(at="22:30:15"), "every day at 22:30:15"),
        (daily(at="6:00,18:30"), "every day at 06:00 and 18:30"),
        (daily(at="8:00,12:00,16:00"), "every day at 08:00, 12:00 and 16:00"),
        (daily(at="9:30", in_weekdays=[0]), "every Monday at 09:30"),
        (daily(at="9:00", in_weekdays=range(5)), "every weekday at 09:00"),
        (daily(at="10:00", in_weekdays=[5, 6]), "every Saturday and Sunday at 10:00"),
        (daily(at="7:00", in_weekdays=[0, 2, 4]), "every Monday, Wednesday and Friday at 07:00"),
        (
            daily(at=[f"{h}:00" for h in range(8)]),
            "every day at 00:00, 01:00, 02:00, 03:00, 04:00, 05:00 and 2 more times",
        ),
        (daily(at="6:00", tz="Asia/Tokyo"), "every day at 06:00 (Asia/Tokyo time)"),
        (daily(at="6:00", tz="Europe/Warsaw"), "every day at 06:00"),
        (hourly(at=15), "every hour at :15"),
        (hourly(), "every hour at :00"),
        (hourly(at="15:30"), "every hour at :15:30"),
        (hourly(at="0,30"), "every hour at :00 and :30"),
        (hourly(period=2, at=5), "every 2 hours at :05"),
        (hourly(at=15, in_weekdays=range(5)), "every hour at :15 on weekdays"),
        (hourly(at=15, in_weekdays=[5, 6]), "every hour at :15 at weekends"),
        (hourly(at=45, in_weekdays=[1]), "every hour at :45 on Tuesdays"),
        (hourly(at=0, in_hours=[9, 13, 17]), "every day at 09:00, 13:00 and 17:00"),
        (in_minute_intervals(5), "every 5 minutes"),
        (in_minute_intervals(1), "every minute"),
        (in_minute_intervals(60), "every hour"),
        (in_minute_intervals(120), "every 2 hours"),
        (in_minute_intervals(15, at="0:30"), "every 15 minutes at second 30"),
        (in_minute_intervals(10, in_hours=range(8, 18)), "every 10 minutes from 08:00 to 17:59"),
        (in_minute_intervals(10, in_hours=[3]), "every 10 minutes from 03:00 to 03:59"),
        (in_minute_intervals(30, in_hours=[1, 5]), "every 30 minutes in hours 1 and 5"),
        (
            in_minute_intervals(5, in_weekdays=[0, 1], in_hours=range(9, 12)),
            "every 5 minutes from 09:00 to 11:59 on Mondays and Tuesdays",
        ),
        (
            in_minute_intervals(5, at="0:10,0:40"),
            "every 5 minutes at second 10; every 5 minutes at second 40",
        ),
        (in_second_intervals(30), "every 30 seconds"),
        (in_second_intervals(90), "every 90 seconds"),
        (in_second_intervals(1), "every second"),
        (monthly_rule(day=1, at="6:00"), "on the 1st of every month at 06:00"),
        (monthly_rule(day=22, at="6:00"), "on the 22nd of every month at 06:00"),
        (
            monthly_rule(day=31, at="23:00"),
            "on the 31st of every month (its last day when shorter) at 23:00",
        ),
        (
            monthly_rule(day=15, at="6:00", in_months=[1, 4, 7, 10]),
            "on the 15th of January, April, July and October at 06:00",
        ),
        (
            monthly_rule(day=1, at="8:00", in_weekdays=range(5)),
            "on the 1st of every month, or the next weekday at 08:00",
        ),
        (
            monthly_rule(day=3, at="8:00", in_weekdays=[0]),
            "on the 3rd of every month, or the next Monday at 08:00",
        ),
        # Django Q's schedule types, from a Monday at 06:30 in Warsaw
        (django_q_rule("D", ANCHOR, WARSAW, None, None), "every day at 06:30"),
        (django_q_rule("W", ANCHOR, WARSAW, None, None), "every Monday at 06:30"),
        (
            django_q_rule("BW", ANCHOR, WARSAW, None, None),
            "every other Monday at 06:30, from 2026-03-02",
        ),
        (django_q_rule("M", ANCHOR, WARSAW, None, None), "on the 2nd of every month at 06:30"),
        (
            django_q_rule("Q", ANCHOR, WARSAW, None, None),
            "every 3 months on the 2nd at 06:30, from 2026-03-02",
        ),
        (django_q_rule("Y", ANCHOR, WARSAW, None, None), "every year on 2 March at 06:30"),
        (django_q_rule("H", ANCHOR, WARSAW, None, None), "every hour"),
        (django_q_rule("I", ANCHOR, WARSAW, 5, None), "every 5 minutes"),
        (django_q_rule("I", ANCHOR, WARSAW, None, None), "every minute"),
        (django_q_rule("O", ANCHOR, WARSAW, None, None), "once, on 2026-03-02 at 06:30"),
        (Step(datetime(2026, 1, 1, 12), days=3), "every 3 days at 12:00, from 2026-01-01"),
        (Every(ANCHOR, 90 * 60), "every 90 minutes"),
        # cron
        (Cron("* * * * *"), "every minute"),
        (Cron("*/5 * * * *"), "every 5 minutes"),
        (Cron("*/1 * * * *"), "every minute"),
        (Cron("15 * * * *"), "every hour at :15"),
        (Cron("0 */2 * * *"), "every 2 hours at :00"),
        (Cron("0 6 * * *"), "every day at 06:00"),
        (Cron("30 9 * * 1"), "every Monday at 09:30"),
        (Cron("30 9 * * mon"), "every Monday at 09:30"),
        (Cron("0 9 * * 1-5"), "every weekday at 09:00"),
        (Cron("0 10 * * 0,6"), "every Saturday and Sunday at 10:00"),
        (Cron("0 10 * * 7"), "every Sunday at 10:00"),
        (Cron("0 6,18 * * *"), "every day at 06:00 and 18:00"),
        (Cron("0 6 1 * *"), "on the 1st of every month at 06:00"),
        (Cron("0 6 1 1 *"), "cron 0 6 1 1 *"),
        (Cron("15 * * * 1"), "cron 15 * * * 1"),
        (Cron("0 6 1 * 1"), "cron 0 6 1 * 1"),
        (Cron("0-10 * * * *"), "cron 0-10 * * * *"),
        (Cron("0 9 * * 1/2"), "cron 0 9 * * 1/2"),
        # several rules, and other zones
        (
            AnyOf((daily(at="6:00"), Cron("30 9 * * 1"))),
            "every day at 06:00; every Monday at 09:30",
        ),
        (
            InZone(DayTimes((3600,)), "America/New_York"),
            "every day at 01:00 (America/New_York time)",
        ),
        (Interval(300, 0, None, frozenset(range(7))), "every 5 minutes"),
        (MonthDay(2, (0,)), "on the 2nd of every month at 00:00"),
    ],
)
def test_rules_in_words(rule: Rule, words: str) -> None:
    assert summary(rule, WARSAW) == words


def test_once_and_every_are_shown_on_the_schedules_clock() -> None:
    once = Once(datetime(2026, 7, 1, 22, 0, tzinfo=UTC))
    assert summary(once, WARSAW) == "once, on 2026-07-02 at 00:00"
    assert summary(once, UTC) == "once, on 2026-07-01 at 22:00"


@pytest.mark.parametrize(
    ("number", "word"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (23, "23rd"),
        (30, "30th"),
        (31, "31st"),
    ],
)
def test_ordinals(number: int, word: str) -> None:
    assert ordinal(number) == word


def test_the_raw_rule_is_the_cron_expression_or_the_stored_json() -> None:
    assert raw(Cron("15 * * * *")) == "cron: 15 * * * *"
    assert raw(daily(at="6:00", in_weekdays=[0])) == (
        '{"kind": "times", "times": [21600], "weekdays": [0], "clock": false}'
    )

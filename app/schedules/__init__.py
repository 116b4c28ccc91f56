"""Schedules: rules, Pytigon's helpers, their storage and the scheduler that fires them.

What task modules and views use is importable from here: `schedule` (Django Q's call), the
rule helpers (`daily`, `in_minute_intervals`, ...) and the schedule errors.
"""

from taskcast.schedules.calendar import Schedule, django_q_rule
from taskcast.schedules.entry import ScheduleBusyError, ScheduleEntry, UnknownScheduleError
from taskcast.schedules.helpers import (
    daily,
    hourly,
    in_minute_intervals,
    in_second_intervals,
    monthly,
    parse_spec,
)
from taskcast.schedules.rules import ScheduleError
from taskcast.schedules.scheduler import schedule

__all__ = [
    "Schedule",
    "ScheduleBusyError",
    "ScheduleEntry",
    "ScheduleError",
    "UnknownScheduleError",
    "daily",
    "django_q_rule",
    "hourly",
    "in_minute_intervals",
    "in_second_intervals",
    "monthly",
    "parse_spec",
    "schedule",
]

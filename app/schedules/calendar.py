"""Calendar rules: times of day, intervals within the day, days of the month, Django Q's steps.

The wall-clock side of the rules in `taskcast.schedules.rules`: each finds the next matching naive
wall time after another; `WallRule` turns that into instants across daylight-saving changes.
"""

from __future__ import annotations

import abc
import calendar
import dataclasses
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar

from taskcast.schedules.rules import (
    DAY,
    AnyOf,
    Cron,
    Every,
    InZone,
    Once,
    Rule,
    ScheduleError,
    WallRule,
    wall,
    whole_number,
)


def seconds_of(moment: datetime) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def at_second(day: datetime, second: int) -> datetime:
    midnight = datetime(day.year, day.month, day.day)
    return midnight + timedelta(seconds=second)


class DayRule(WallRule):
    """Times of day on allowed weekdays: `first_time(day, second)` gives the day's next time."""

    weekdays: frozenset[int] | None

    @abc.abstractmethod
    def first_time(self, second: int) -> int | None:
        """The first time of day (in seconds) at or after `second`, None if none is left."""

    def next_wall(self, after: datetime) -> datetime | None:
        day, second = after, seconds_of(after) + 1
        for _ in range(8):
            if self.weekdays is None or day.weekday() in self.weekdays:
                found = self.first_time(second) if second < DAY else None
                if found is not None:
                    return at_second(day, found)
            day, second = day + timedelta(days=1), 0
        return None


@dataclasses.dataclass(frozen=True)
class DayTimes(DayRule):
    """Pytigon's daily (fixed times) and hourly (clock readings): a sorted list of times of day."""

    kind: ClassVar[str] = "times"
    times: tuple[int, ...]
    weekdays: frozenset[int] | None = None
    clock: bool = False

    def __post_init__(self) -> None:
        if not self.times:
            raise ScheduleError("a schedule needs at least one time of day")

    def readings(self) -> bool:
        return self.clock

    def first_time(self, second: int) -> int | None:
        return next((time for time in self.times if time >= second), None)


@dataclasses.dataclass(frozen=True)
class Interval(DayRule):
    """Every `period` seconds counted from midnight, from `offset`, in the allowed hours."""

    kind: ClassVar[str] = "interval"
    period: int
    offset: int = 0
    hours: frozenset[int] | None = None
    weekdays: frozenset[int] | None = None

    def readings(self) -> bool:
        return True

    def first_time(self, second: int) -> int | None:
        while second < DAY:
            steps = max(0, -(-(second - self.offset) // self.period))
            found = self.offset + steps * self.period
            if found >= DAY:
                return None
            if self.hours is None or found // 3600 in self.hours:
                return found
            second = (found // 3600 + 1) * 3600  # the start of the next hour
        return None


def add_months(moment: datetime, months: int, day: int) -> datetime:
    """`moment` moved by `months`, on `day` or the month's last day if it is shorter."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(day, calendar.monthrange(year, month)[1]))


@dataclasses.dataclass(frozen=True)
class MonthDay(WallRule):
    """Pytigon's monthly: a day of the month (the last day in shorter months), moved forward to
    an allowed weekday, at fixed times."""

    kind: ClassVar[str] = "monthly"
    day: int
    times: tuple[int, ...]
    months: frozenset[int] | None = None
    weekdays: frozenset[int] | None = None

    def next_wall(self, after: datetime) -> datetime | None:
        # Start a month early: a date moved to the next weekday may fall in this month.
        month = add_months(after.replace(day=1, hour=0, minute=0, second=0, microsecond=0), -1, 1)
        for _ in range(14):
            if self.months is None or month.month in self.months:
                date = add_months(month, 0, self.day)
                while self.weekdays is not None and date.weekday() not in self.weekdays:
                    date += timedelta(days=1)
                for time in self.times:
                    if at_second(date, time) > after:
                        return at_second(date, time)
            month = add_months(month, 1, 1)
        return None


@dataclasses.dataclass(frozen=True)
class Step(WallRule):
    """Django Q's calendar types: from a wall-clock anchor, every `days` or every `months`."""

    kind: ClassVar[str] = "step"
    anchor: datetime
    days: int = 0
    months: int = 0

    def next_wall(self, after: datetime) -> datetime | None:
        if after < self.anchor:
            return self.anchor
        if self.days:
            span = timedelta(days=self.days)
            return self.anchor + ((after - self.anchor) // span + 1) * span
        elapsed = (after.year - self.anchor.year) * 12 + after.month - self.anchor.month
        count = elapsed // self.months
        while (found := add_months(self.anchor, count * self.months, self.anchor.day)) <= after:
            count += 1
        return found


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _set(values: list[int] | None) -> frozenset[int] | None:
    return None if values is None else frozenset(values)


def rule_from_json(data: dict[str, Any]) -> Rule:
    """The rule `Rule.to_json` described."""
    kind = data["kind"]
    if kind == "times":
        return DayTimes(tuple(data["times"]), _set(data["weekdays"]), data["clock"])
    if kind == "interval":
        hours, days = _set(data["hours"]), _set(data["weekdays"])
        return Interval(data["period"], data["offset"], hours, days)
    if kind == "monthly":
        days = _set(data["weekdays"])
        return MonthDay(data["day"], tuple(data["times"]), _set(data["months"]), days)
    if kind == "step":
        return Step(_moment(data["anchor"]), data["days"], data["months"])
    if kind == "every":
        return Every(_moment(data["anchor"]), data["seconds"])
    if kind == "once":
        return Once(_moment(data["anchor"]))
    if kind == "cron":
        return Cron(data["expression"])
    if kind == "any":
        return AnyOf(tuple(rule_from_json(item) for item in data["rules"]))
    if kind == "zone":
        return InZone(rule_from_json(data["rule"]), data["zone"])
    raise ScheduleError(f"unknown kind of schedule rule {kind!r}")


# -- Django Q's schedule types -------------------------------------------------------------------


class Schedule:
    """Django Q's schedule type constants (`Schedule.DAILY`...), for `schedule()`."""

    ONCE = "O"
    MINUTES = "I"
    HOURLY = "H"
    DAILY = "D"
    WEEKLY = "W"
    BIWEEKLY = "BW"
    MONTHLY = "M"
    BIMONTHLY = "BM"
    QUARTERLY = "Q"
    YEARLY = "Y"
    CRON = "C"


_NAMES = {name.lower(): code for name, code in vars(Schedule).items() if name.isupper()}
_STEPS = {"D": (1, 0), "W": (7, 0), "BW": (14, 0), "M": (0, 1), "BM": (0, 2), "Q": (0, 3)}


def django_q_rule(
    schedule_type: str, anchor: datetime, tz: tzinfo, minutes: int | None, cron: str | None
) -> Rule:
    """The rule of a Django Q schedule type; `anchor` (UTC) is its first run, `next_run`."""
    code = _NAMES.get(str(schedule_type).lower(), schedule_type)
    anchor = anchor.astimezone(UTC).replace(microsecond=0)
    if code == Schedule.ONCE:
        return Once(anchor)
    if code == Schedule.MINUTES:
        # Django Q runs a MINUTES schedule without minutes (or with 0) every minute.
        return Every(anchor, whole_number("minutes", minutes or 1, 1, 527_040) * 60)
    if code == Schedule.HOURLY:
        return Every(anchor, 3600)
    if code == Schedule.YEARLY:
        return Step(wall(anchor, tz), months=12)
    if code in _STEPS:
        days, months = _STEPS[code]
        return Step(wall(anchor, tz), days=days, months=months)
    if code == Schedule.CRON:
        if not isinstance(cron, str) or not cron.strip():
            raise ScheduleError(
                "schedule_type CRON needs cron='<minute> <hour> <day> <month> <dow>'"
            )
        return Cron(cron.strip())
    raise ScheduleError(f"unknown schedule_type {schedule_type!r}")

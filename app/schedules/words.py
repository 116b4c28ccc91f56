"""Schedule rules in the words people use: "every hour at :15", "every day at 06:00", "every
Monday at 09:30", "every 5 minutes"; and each rule's raw form, for whoever wants the detail.

Every kind of rule gets a summary; a cron expression that does not fit a common pattern is
shown as it is. Times are wall-clock times in the scheduler's zone (`tz`), as the rules mean.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, tzinfo

from taskcast.schedules.calendar import DayTimes, Interval, MonthDay, Step
from taskcast.schedules.rules import AnyOf, Cron, Every, InZone, Once, Rule

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})
#: times of day listed one by one before the rest is counted
SHOWN_TIMES = 6


def joined(items: Iterable[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    words = list(items)
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


def plural(count: int, unit: str) -> str:
    return f"{unit}" if count == 1 else f"{count} {unit}s"


def clock(seconds: int) -> str:
    """A time of day given in seconds: "06:00", "06:00:30"."""
    text = f"{seconds // 3600:02}:{seconds // 60 % 60:02}"
    return text + (f":{seconds % 60:02}" if seconds % 60 else "")


def past_the_hour(seconds: int) -> str:
    """Seconds past the hour as a clock shows them: ":15", ":15:30"."""
    text = f":{seconds // 60:02}"
    return text + (f":{seconds % 60:02}" if seconds % 60 else "")


def times_of_day(times: Iterable[int]) -> str:
    shown = sorted(times)
    if len(shown) > SHOWN_TIMES:
        listed = ", ".join(clock(t) for t in shown[:SHOWN_TIMES])
        return f"{listed} and {len(shown) - SHOWN_TIMES} more times"
    return joined(clock(t) for t in shown)


def days(weekdays: frozenset[int] | None) -> str:
    """The "every ..." part for the days: "every day", "every weekday", "every Monday"."""
    if weekdays is None or weekdays == frozenset(range(7)):
        return "every day"
    if weekdays == WEEKDAYS:
        return "every weekday"
    if weekdays == WEEKEND:
        return "every Saturday and Sunday"
    return "every " + joined(DAY_NAMES[day] for day in sorted(weekdays))


def on_days(weekdays: frozenset[int] | None) -> str:
    """The same as a tail: "", " on weekdays", " on Mondays and Fridays"."""
    if weekdays is None or weekdays == frozenset(range(7)):
        return ""
    if weekdays == WEEKDAYS:
        return " on weekdays"
    if weekdays == WEEKEND:
        return " at weekends"
    return " on " + joined(f"{DAY_NAMES[day]}s" for day in sorted(weekdays))


def in_hours(hours: frozenset[int] | None) -> str:
    """ " from 08:00 to 17:59" for a run of hours, " in hours 8, 12 and 16" otherwise."""
    if hours is None or len(hours) == 24:
        return ""
    ordered = sorted(hours)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 1:
        return f" from {ordered[0]:02}:00 to {ordered[-1]:02}:59"
    if len(ordered) == 1:
        return f" from {ordered[0]:02}:00 to {ordered[0]:02}:59"
    return " in hours " + joined(str(hour) for hour in ordered)


def period(seconds: int) -> str:
    """ "every 5 minutes", "every hour", "every 90 seconds"."""
    if seconds % 3600 == 0:
        return "every " + plural(seconds // 3600, "hour")
    if seconds % 60 == 0:
        return "every " + plural(seconds // 60, "minute")
    return "every " + plural(seconds, "second")


def _hourly(rule: DayTimes) -> str:
    hours = sorted({time // 3600 for time in rule.times})
    offsets = sorted({time % 3600 for time in rule.times})
    if len(hours) * len(offsets) != len(
        rule.times
    ):  # not every hour at the same minutes: list the times
        return f"{days(rule.weekdays)} at {times_of_day(rule.times)}"
    at = "at " + joined(past_the_hour(offset) for offset in offsets)
    if len(hours) == 24:
        return f"every hour {at}{on_days(rule.weekdays)}"
    step = hours[1] - hours[0] if len(hours) > 1 else 0
    if step and hours == list(range(0, 24, step)):
        return f"every {step} hours {at}{on_days(rule.weekdays)}"
    return f"{days(rule.weekdays)} at {times_of_day(rule.times)}"


def _interval(rule: Interval) -> str:
    text = period(rule.period)
    if rule.offset:
        text += f" at second {rule.offset}"
    return text + in_hours(rule.hours) + on_days(rule.weekdays)


def _monthly(rule: MonthDay) -> str:
    if rule.months is None or len(rule.months) == 12:
        months = "every month"
    else:
        months = joined(MONTH_NAMES[month - 1] for month in sorted(rule.months))
    text = f"on the {ordinal(rule.day)} of {months}"
    if rule.day > 28:
        text += " (its last day when shorter)"
    if rule.weekdays is not None and len(rule.weekdays) < 7:
        allowed = (
            "weekday"
            if rule.weekdays == WEEKDAYS
            else " or ".join(DAY_NAMES[day] for day in sorted(rule.weekdays))
        )
        text += f", or the next {allowed}"
    return f"{text} at {times_of_day(rule.times)}"


def _step(rule: Step) -> str:
    at = f"at {clock(rule.anchor.hour * 3600 + rule.anchor.minute * 60 + rule.anchor.second)}"
    day_name = DAY_NAMES[rule.anchor.weekday()]
    if rule.days == 1:
        return f"every day {at}"
    if rule.days == 7:
        return f"every {day_name} {at}"
    if rule.days == 14:
        return f"every other {day_name} {at}, from {rule.anchor:%Y-%m-%d}"
    if rule.days:
        return f"every {rule.days} days {at}, from {rule.anchor:%Y-%m-%d}"
    if rule.months == 12:
        return f"every year on {rule.anchor.day} {MONTH_NAMES[rule.anchor.month - 1]} {at}"
    day = ordinal(rule.anchor.day)
    if rule.months == 1:
        return f"on the {day} of every month {at}"
    return f"every {rule.months} months on the {day} {at}, from {rule.anchor:%Y-%m-%d}"


def _local(moment: datetime, tz: tzinfo) -> str:
    return f"{moment.astimezone(tz):%Y-%m-%d at %H:%M}"


# -- cron ------------------------------------------------------------------------------------------

_CRON_DAYS = {
    name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))
}


def _cron_number(text: str, low: int, high: int) -> int | None:
    value = _CRON_DAYS.get(text.lower(), None) if not text.isdigit() else int(text)
    return value if value is not None and low <= value <= high else None


def _cron_days(field: str) -> frozenset[int] | None:
    """A cron day-of-week field as Monday=0 weekdays; None when it is not a plain list/range."""
    found: set[int] = set()
    for part in field.split(","):
        first, _, last = part.partition("-")
        start, end = _cron_number(first, 0, 7), _cron_number(last or first, 0, 7)
        if start is None or end is None or end < start:
            return None
        found.update((day - 1) % 7 for day in range(start, end + 1))  # cron: 0 and 7 are Sunday
    return frozenset(found)


def _cron(expression: str) -> str | None:
    """A cron expression of a common pattern in words; None for any other."""
    fields = expression.split()
    if len(fields) != 5:
        return None
    minute, hour, day, month, weekday = fields
    if month != "*":
        return None
    every = minute.removeprefix("*/")
    if hour == day == weekday == "*" and (minute == "*" or every != minute):
        if minute == "*":
            return "every minute"
        return period(int(every) * 60) if every.isdigit() and int(every) > 0 else None
    if not minute.isdigit() or int(minute) > 59:
        return None
    at_minute = past_the_hour(int(minute) * 60)
    if day == weekday == "*":
        if hour == "*":
            return f"every hour at {at_minute}"
        step = hour.removeprefix("*/")
        if step != hour and step.isdigit() and 0 < int(step) < 24:
            return f"every {plural(int(step), 'hour')} at {at_minute}"
    hours = [int(h) for h in hour.split(",") if h.isdigit() and int(h) < 24]
    if len(hours) != len(hour.split(",")):
        return None
    at = "at " + times_of_day(h * 3600 + int(minute) * 60 for h in hours)
    if day == "*":
        weekdays = None if weekday == "*" else _cron_days(weekday)
        if weekday != "*" and weekdays is None:
            return None
        return f"{days(weekdays)} {at}"
    if weekday == "*" and day.isdigit() and 1 <= int(day) <= 31:
        return f"on the {ordinal(int(day))} of every month {at}"
    return None


# -- the two entry points ----------------------------------------------------------------------------


def summary(rule: Rule, tz: tzinfo) -> str:
    """The rule in a few words people use; times in `tz`, the scheduler's zone."""
    if isinstance(rule, AnyOf):
        return "; ".join(summary(part, tz) for part in rule.rules)
    if isinstance(rule, InZone):
        inner = summary(rule.rule, tz)
        return inner if rule.zone == str(tz) else f"{inner} ({rule.zone} time)"
    if isinstance(rule, DayTimes):
        if rule.clock:
            return _hourly(rule)
        return f"{days(rule.weekdays)} at {times_of_day(rule.times)}"
    if isinstance(rule, Interval):
        return _interval(rule)
    if isinstance(rule, MonthDay):
        return _monthly(rule)
    if isinstance(rule, Step):
        return _step(rule)
    if isinstance(rule, Every):
        return period(rule.seconds)  # its start is in the raw rule
    if isinstance(rule, Once):
        return f"once, on {_local(rule.anchor, tz)}"
    if isinstance(rule, Cron):
        return _cron(rule.expression) or f"cron {rule.expression}"
    return rule.kind


def raw(rule: Rule) -> str:
    """The rule as it is stored: the cron expression, or its JSON."""
    if isinstance(rule, Cron):
        return f"cron: {rule.expression}"
    return json.dumps(rule.to_json(), separators=(", ", ": "))

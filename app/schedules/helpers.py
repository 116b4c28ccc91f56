"""Pytigon's helpers: `daily`, `hourly`, `monthly`, the intervals, and its schedule strings.

Pure code: each helper checks its arguments and returns a rule (`taskcast.schedules.rules`) that
computes the next run from an injected "now". `parse_spec` reads a schedule string such as
"d(at='22:30'); h(period=2)" without evaluating it; `to_rule` takes any of these.
"""

from __future__ import annotations

import ast
import logging
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from taskcast.schedules.calendar import DayTimes, Interval, MonthDay
from taskcast.schedules.rules import AnyOf, InZone, Rule, ScheduleError, whole_number

logger = logging.getLogger(__name__)

#: most numbers a range() in a schedule string may give (a day has 86,400 seconds)
MAX_RANGE = 100_000

__all__ = [
    "daily",
    "hourly",
    "in_minute_intervals",
    "in_second_intervals",
    "monthly",
    "parse_spec",
    "to_rule",
]

At = int | str | Sequence[int | str]
#: what a schedule's timing may be given as: a rule, a schedule string, or a list of those
RuleLike = Rule | str | Sequence[Any]


def _numbers(name: str, values: Iterable[int] | None, low: int, high: int) -> frozenset[int] | None:
    if values is None:
        return None
    if isinstance(values, int | str):
        values = [values]
    chosen = frozenset(whole_number(name, value, low, high) for value in values)
    if not chosen:
        raise ScheduleError(f"{name} is empty: the schedule would never run")
    return chosen


def _at_item(item: int | str) -> tuple[int, int, int]:
    try:
        parts = [int(part) for part in item.split(":")] if isinstance(item, str) else [item]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(
        isinstance(p, bool) or not isinstance(p, int) for p in parts
    ):
        raise ScheduleError(f"at: {item!r} is not a time like 22, '22:30' or '22:30:15'")
    padded = [*parts, 0, 0]
    return padded[0], padded[1], padded[2]


def parse_at(at: At) -> list[tuple[int, int, int]]:
    """`at` as (first, second, third) numbers: an int, "HH[:MM[:SS]]", a comma list or a list."""
    items: Sequence[Any] = (
        [at] if isinstance(at, int) else at.split(",") if isinstance(at, str) else at
    )
    parsed = []
    for item in items:
        if isinstance(item, str) and "," in item:
            parsed.extend(parse_at(item))
        elif not (isinstance(item, str) and not item.strip()):
            parsed.append(_at_item(item))
    if not parsed:
        raise ScheduleError("at is empty: give at least one time")
    return parsed


def _times_of_day(at: At) -> tuple[int, ...]:
    times = set()
    for hour, minute, second in parse_at(at):
        whole_number("the hour in at", hour, 0, 23)
        whole_number("the minute in at", minute, 0, 59)
        times.add(hour * 3600 + minute * 60 + whole_number("the second in at", second, 0, 59))
    return tuple(sorted(times))


def in_zone(rule: Rule, tz: str | None) -> Rule:
    """Pytigon's `tz=`: "local" (or None) is the scheduler's zone, else an IANA zone name."""
    if tz is None or tz == "local":
        return rule
    try:
        zoneinfo.ZoneInfo(tz)
    except (TypeError, ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ScheduleError(
            f"tz is 'local' or an IANA zone like 'Europe/Warsaw', not {tz!r}"
        ) from None
    return InZone(rule, tz)


def daily(at: At = 0, in_weekdays: Iterable[int] | None = None, tz: str | None = "local") -> Rule:
    """Every day (or the given weekdays, 0 = Monday) at each time of `at`."""
    return in_zone(DayTimes(_times_of_day(at), _numbers("in_weekdays", in_weekdays, 0, 6)), tz)


def hourly(
    period: int = 1,
    at: At = 0,
    in_weekdays: Iterable[int] | None = None,
    in_hours: Iterable[int] | None = None,
) -> Rule:
    """Every `period` hours (the hours divisible by it), `at` minutes ("MM[:SS]") past the hour."""
    whole_number("period", period, 1, 24)
    hours = _numbers("in_hours", in_hours, 0, 23)
    chosen = [h for h in range(0, 24, period) if hours is None or h in hours]
    if not chosen:
        raise ScheduleError(f"no hour divisible by period {period} is in in_hours")
    past = set()
    for minute, second, extra in parse_at(at):
        if extra:
            raise ScheduleError(f"hourly at is minutes past the hour ('MM' or 'MM:SS'), not {at!r}")
        past.add(
            whole_number("the minute in at", minute, 0, 59) * 60
            + whole_number("second", second, 0, 59)
        )
    times = tuple(sorted(h * 3600 + offset for h in chosen for offset in past))
    return DayTimes(times, _numbers("in_weekdays", in_weekdays, 0, 6), clock=True)


def monthly(
    day: int = 1,
    at: At = 0,
    in_months: Iterable[int] | None = None,
    in_weekdays: Iterable[int] | None = None,
    tz: str | None = "local",
) -> Rule:
    """Day `day` of each month (its last day in shorter months), moved forward to the next
    allowed weekday, at each time of `at`."""
    months = _numbers("in_months", in_months, 1, 12)
    weekdays = _numbers("in_weekdays", in_weekdays, 0, 6)
    rule = MonthDay(whole_number("day", day, 1, 31), _times_of_day(at), months, weekdays)
    return in_zone(rule, tz)


def _interval(period: int, offset: int, in_weekdays: Any, in_hours: Any) -> Rule:
    hours = _numbers("in_hours", in_hours, 0, 23)
    return Interval(period, offset, hours, _numbers("in_weekdays", in_weekdays, 0, 6))


def in_minute_intervals(
    period: int = 1,
    at: At = 0,
    in_weekdays: Iterable[int] | None = None,
    in_hours: Iterable[int] | None = None,
) -> Rule:
    """Every `period` minutes counted from midnight, at the second of each item of `at`.

    As in Pytigon, each item of `at` is read as hourly's is, "MM:SS", and only its seconds count:
    `at="0:30"` is second 30, and `at=30` (30 minutes, no seconds) is second 0.
    """
    minutes = whole_number("period", period, 1, 1440)
    rules = []
    for ignored, second, _ in parse_at(at):
        if ignored:
            logger.warning(
                "in_minute_intervals(at=%r): only the seconds of 'MM:SS' count, as in Pytigon; "
                "for second %s write at='0:%s'",
                at,
                ignored,
                ignored,
            )
        second = whole_number("the second in at", second, 0, 59)
        rules.append(_interval(minutes * 60, second, in_weekdays, in_hours))
    return any_of(list(dict.fromkeys(rules)))


def in_second_intervals(
    period: int = 1,
    in_weekdays: Iterable[int] | None = None,
    in_hours: Iterable[int] | None = None,
) -> Rule:
    """Every `period` seconds counted from midnight."""
    return _interval(whole_number("period", period, 1, 86_400), 0, in_weekdays, in_hours)


#: the names a Pytigon schedule string may use (its one-letter short forms included)
HELPERS: dict[str, Callable[..., Rule]] = {
    "monthly": monthly,
    "daily": daily,
    "hourly": hourly,
    "in_minute_intervals": in_minute_intervals,
    "in_second_intervals": in_second_intervals,
    "M": monthly,
    "d": daily,
    "h": hourly,
    "m": in_minute_intervals,
    "s": in_second_intervals,
}


def parse_spec(text: str) -> Rule:
    """A Pytigon schedule string, e.g. "d(at='22:30'); h(period=2)": calls separated by ';'
    whose arguments are literals (never evaluated as code)."""
    rules = []
    for part in filter(None, (piece.strip() for piece in text.split(";"))):
        try:
            node = ast.parse(part, mode="eval").body
            call = node if isinstance(node, ast.Call) else ast.Call(node, [], [])
            if not isinstance(call.func, ast.Name) or call.func.id not in HELPERS:
                raise ScheduleError(f"{part!r}: use one of {', '.join(HELPERS)}")
            args = [_literal(arg) for arg in call.args]
            kwargs = {kw.arg: _literal(kw.value) for kw in call.keywords if kw.arg}
        except (SyntaxError, ValueError, TypeError) as exc:
            if isinstance(exc, ScheduleError):
                raise
            raise ScheduleError(f"{part!r} is not a schedule call like d(at='22:30')") from None
        rules.append(HELPERS[call.func.id](*args, **kwargs))
    return any_of(rules)


def _literal(node: ast.expr) -> Any:
    """A literal argument, or `range(...)` of literal numbers (as Pytigon's strings use)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        bounds = [ast.literal_eval(arg) for arg in node.args]
        if node.keywords or not 1 <= len(bounds) <= 3 or not all(type(b) is int for b in bounds):
            raise ScheduleError(f"range() takes one to three whole numbers: {ast.unparse(node)}")
        numbers = range(*bounds)
        if len(numbers) > MAX_RANGE:
            raise ScheduleError(f"{ast.unparse(node)} gives more than {MAX_RANGE} numbers")
        return list(numbers)
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item) for item in node.elts]
    return ast.literal_eval(node)


def any_of(rules: Sequence[Rule]) -> Rule:
    if not rules:
        raise ScheduleError("no schedule rule given")
    return rules[0] if len(rules) == 1 else AnyOf(tuple(rules))


def to_rule(value: RuleLike) -> Rule:
    """A rule from a rule, a Pytigon schedule string, or a list of those."""
    if isinstance(value, Rule):
        return value
    if isinstance(value, str):
        return parse_spec(value)
    if isinstance(value, list | tuple):
        return any_of([to_rule(item) for item in value])
    raise ScheduleError(f"a schedule's timing is a rule like daily(at='22:30'), not {value!r}")

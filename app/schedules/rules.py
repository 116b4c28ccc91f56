"""When a schedule runs: rules that compute the next run after a given instant, in a time zone.

Pure code: no clock, no I/O. Every instant in and out is an aware UTC datetime; the zone turns
them into what the wall clock shows. Three ways of meeting daylight-saving changes:

- fixed times (daily, monthly, weekly... Django Q's calendar types): each wall-clock time runs
  once. A time the clock skips (spring forward) runs when the clock jumps; a time it shows twice
  (fall back) runs the first time only.
- clock readings (hourly, minute and second intervals): a run whenever the clock shows a matching
  time, so the repeated hour of a fall-back night runs again and the skipped hour does not.
- elapsed time (Django Q's minutes and hourly, once): real seconds from an anchor, no wall clock.
"""

from __future__ import annotations

import abc
import dataclasses
import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar

from cronsim import CronSim, CronSimError

from taskcast.errors import TaskcastError

DAY = 86_400
_TICK = timedelta(microseconds=1)


class ScheduleError(TaskcastError, ValueError):
    """A schedule was defined with arguments that do not make sense."""


def whole_number(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScheduleError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


def wall(instant: datetime, tz: tzinfo) -> datetime:
    """What the clock in `tz` shows at `instant`, as a naive datetime."""
    return instant.astimezone(tz).replace(tzinfo=None)


def _offset(instant: datetime, tz: tzinfo) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


def _transition(lo: datetime, hi: datetime, tz: tzinfo) -> datetime:
    """The first whole second in (lo, hi] whose UTC offset differs from lo's (hi's offset does)."""
    before = _offset(lo, tz)
    low, high = int(lo.timestamp()), int(hi.timestamp())
    if high < hi.timestamp():
        high += 1
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(datetime.fromtimestamp(middle, UTC), tz) == before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)


def fixed_instant(local: datetime, tz: tzinfo) -> datetime:
    """The instant a fixed wall time stands for: the first of two, or the end of a skipped gap."""
    utc = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if wall(utc, tz) == local:
        return utc
    # Skipped: fold=0 read it with the offset before the jump, which lands after the jump.
    earlier = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _transition(min(earlier, utc), max(earlier, utc), tz)


class Rule(abc.ABC):
    """A schedule's timing. Subclasses are frozen dataclasses that round-trip through JSON."""

    kind: ClassVar[str]

    @abc.abstractmethod
    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        """The first run strictly after `after` (UTC), None if there is none."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: _jsonable(v) for k, v in vars(self).items()}}

    def shape(self) -> dict[str, Any]:
        """The JSON without the anchor: two rules of the same shape differ only in their start."""
        return {k: v for k, v in self.to_json().items() if k != "anchor"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Rule):
        return value.to_json()
    return value


class WallRule(Rule):
    """A rule over wall-clock times: `next_wall` finds the next matching time after a reading."""

    def readings(self) -> bool:
        """True: every reading of the clock counts (hourly and shorter); False: fixed times."""
        return False

    @abc.abstractmethod
    def next_wall(self, after: datetime) -> datetime | None:
        """The first matching naive wall time strictly after `after`."""

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        return self._next_reading(after, tz) if self.readings() else self._next_fixed(after, tz)

    def _next_fixed(self, after: datetime, tz: tzinfo) -> datetime | None:
        local = wall(after, tz)
        # After a fall-back the clock reads earlier times again; those already ran: step past.
        for _ in range(10_000):
            found = self.next_wall(local)
            if found is None:
                return None
            instant = fixed_instant(found, tz)
            if instant > after:
                return instant
            local = found
        return None

    def _next_reading(self, after: datetime, tz: tzinfo) -> datetime | None:
        moment, since = after, wall(after, tz)
        for _ in range(8):  # one pass per offset change crossed; a week has at most two
            offset = _offset(moment, tz)
            local = self.next_wall(since)
            if local is None:
                return None
            candidate = local.replace(tzinfo=UTC) - offset
            if _offset(candidate, tz) == offset:
                return candidate
            moment = _transition(moment, candidate, tz)
            since = wall(moment, tz) - _TICK  # a reading right at the change counts
        return None


@dataclasses.dataclass(frozen=True)
class Every(Rule):
    """Elapsed time: every `seconds` real seconds from `anchor`, whatever the clock shows."""

    kind: ClassVar[str] = "every"
    anchor: datetime
    seconds: int

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        if after < self.anchor:
            return self.anchor
        span = timedelta(seconds=self.seconds)
        return self.anchor + ((after - self.anchor) // span + 1) * span


@dataclasses.dataclass(frozen=True)
class Once(Rule):
    """A single run at `anchor`."""

    kind: ClassVar[str] = "once"
    anchor: datetime

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        return self.anchor if self.anchor > after else None


@dataclasses.dataclass(frozen=True)
class Cron(Rule):
    """A cron expression, evaluated by cronsim as Debian's cron does (DST included)."""

    kind: ClassVar[str] = "cron"
    expression: str

    def __post_init__(self) -> None:
        try:
            CronSim(self.expression, datetime(2000, 1, 1))
        except (CronSimError, ValueError) as exc:
            raise ScheduleError(f"bad cron expression {self.expression!r}: {exc}") from None

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        runs = CronSim(self.expression, after.astimezone(tz))
        for found in runs:  # cronsim may return a fall-back's repeated time already passed
            if found.astimezone(UTC) > after:
                return found.astimezone(UTC)
        return None


@dataclasses.dataclass(frozen=True)
class AnyOf(Rule):
    """Several rules at once (Pytigon: a list of time functions, or `at` with several times)."""

    kind: ClassVar[str] = "any"
    rules: tuple[Rule, ...]

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        found = [run for rule in self.rules if (run := rule.next_after(after, tz)) is not None]
        return min(found, default=None)


@dataclasses.dataclass(frozen=True)
class InZone(Rule):
    """A rule computed in a time zone of its own (Pytigon's `tz=`), not the scheduler's."""

    kind: ClassVar[str] = "zone"
    rule: Rule
    zone: str

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        return self.rule.next_after(after, zoneinfo.ZoneInfo(self.zone))

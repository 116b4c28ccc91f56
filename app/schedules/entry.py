"""A schedule as it is kept: `ScheduleEntry`, its catch-up and overlap policies, and its errors.

No clock and no I/O: the scheduler passes the time. `due_runs` is the catch-up policy: given a
schedule whose next run has come and the time now, it says which runs start, which one is skipped
and when the schedule runs next. What happens to a run due while the previous one still runs (the
overlap policy) depends on the runs going on, so the scheduler applies it. `run_spec` is the task
call of one run.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from taskcast.errors import TaskcastError
from taskcast.schedules.rules import Rule, ScheduleError
from taskcast.spec import TaskSpec, build_spec

CatchUp = Literal["once", "all", "skip"]
Overlap = Literal["skip", "queue"]
CATCH_UP: tuple[CatchUp, ...] = ("once", "all", "skip")
OVERLAP: tuple[Overlap, ...] = ("skip", "queue")

#: a run started this late is still on time; later than this it counts as missed
MISFIRE_GRACE = timedelta(seconds=60)


class UnknownScheduleError(TaskcastError, LookupError):
    """No schedule has that name."""


class ScheduleBusyError(TaskcastError, RuntimeError):
    """The schedule cannot do that now (a run is still going, or it has no run left)."""


@dataclasses.dataclass(frozen=True)
class ScheduleEntry:
    """A schedule: what to run, when, how to catch up and overlap, and where it stands."""

    name: str
    func: str
    rule: Rule
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    q_options: dict[str, Any] | None = None
    #: Django Q's repeats: -1 forever, else how many runs are left
    repeats: int = -1
    #: runs missed while the server was down: run "once", run "all" (up to backlog), "skip"
    catch_up: CatchUp = "once"
    #: a run due while the previous one still runs: "skip" it (recorded) or "queue" it
    overlap: Overlap = "skip"
    #: most runs that may wait their turn (catch-up "all", overlap "queue"); more are skipped
    backlog: int = 10
    #: keyword that receives the run's intended time (ISO text), as in Django Q
    intended_date_kwarg: str | None = None
    #: "init_schedule" (re-registered by code at each start) or "schedule" (stored until deleted)
    origin: str = "schedule"
    paused: bool = False
    next_run: datetime | None = None
    #: the intended time of the newest run that was due (started or skipped)
    last_run: datetime | None = None
    #: the task id of the newest run started
    last_task: str | None = None
    #: why the newest due run was skipped; None when it started
    last_skip: str | None = None

    def replace(self, **changes: Any) -> ScheduleEntry:
        return dataclasses.replace(self, **changes)


def check_policies(catch_up: str, overlap: str, backlog: int) -> None:
    if catch_up not in CATCH_UP:
        raise ScheduleError(f"catch_up must be one of {', '.join(CATCH_UP)}, not {catch_up!r}")
    if overlap not in OVERLAP:
        raise ScheduleError(f"overlap must be one of {', '.join(OVERLAP)}, not {overlap!r}")
    if isinstance(backlog, bool) or not isinstance(backlog, int) or not 1 <= backlog <= 1000:
        raise ScheduleError(f"backlog must be a whole number from 1 to 1000, not {backlog!r}")


@dataclasses.dataclass(frozen=True)
class DueRuns:
    """What a schedule whose next run has come does now, in this order."""

    #: the runs to start, oldest first: (intended time, whether it may wait behind a run going on)
    runs: tuple[tuple[datetime, bool], ...]
    #: a run that is recorded as skipped instead, and why
    skip: tuple[datetime, str] | None
    #: the schedule's next run after these
    next_run: datetime | None


def due_runs(entry: ScheduleEntry, now: datetime, tz: tzinfo) -> DueRuns:
    """Apply the catch-up policy to `entry`, whose next run is at or before `now`."""
    due = entry.next_run
    assert due is not None
    following = entry.rule.next_after(due, tz)
    queue = entry.overlap == "queue"
    if now - due <= MISFIRE_GRACE and (following is None or following > now):
        return DueRuns(((due, queue),), None, following)
    later = entry.rule.next_after(now, tz)
    if entry.catch_up == "skip":
        reason = "missed while the server was not running (catch_up='skip')"
        return DueRuns((), (due, reason), later)
    if entry.catch_up == "once":
        return DueRuns(((due, queue),), None, later)
    # "all": the missed runs up to the backlog, each queued behind the one before.
    missed = [due]
    while len(missed) <= entry.backlog and following is not None and following <= now:
        missed.append(following)
        following = entry.rule.next_after(following, tz)
    skip = None
    if len(missed) > entry.backlog:
        reason = f"more than {entry.backlog} runs were missed: this one and later are skipped"
        skip = (missed[entry.backlog], reason)
    return DueRuns(tuple((moment, True) for moment in missed[: entry.backlog]), skip, later)


def stream_name(name: str, due: datetime) -> str:
    """A run's task_publish_id: the schedule's name and the run's time, e.g. report-20240331T0100Z."""
    slug = re.sub(r"[^\w.-]+", "_", name)[:60]
    return f"{slug}-{due.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def run_spec(
    entry: ScheduleEntry,
    due: datetime,
    tz: tzinfo,
    timeout: float | None,
    call: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None = None,
) -> TaskSpec:
    """The task call of `entry`'s run due at `due`: with its intended time if the entry asks for
    it, a stream of its own for a @publish task, and the schedule's name for its record. `call`
    is the function and arguments of a schedule kept in memory only, instead of the entry's.
    Raises what `build_spec` raises (the function has gone, say)."""
    func, args, kwargs = call if call is not None else (entry.func, entry.args, entry.kwargs)
    kwargs = dict(kwargs)
    if entry.intended_date_kwarg:
        kwargs[entry.intended_date_kwarg] = due.astimezone(tz).isoformat()
    # As Django Q's scheduler does: the run's group is the schedule's name unless q_options says.
    options = {"group": entry.name, **(entry.q_options or {})}
    spec = build_spec(func, args, kwargs, options, timeout)
    if spec.stream_id is not None and "task_publish_id" not in kwargs:
        kwargs["task_publish_id"] = stream_name(entry.name, due)
        spec = build_spec(func, args, kwargs, options, timeout)
    return dataclasses.replace(spec, schedule=entry.name)

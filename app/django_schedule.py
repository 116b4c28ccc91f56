"""Django Q's `schedule()` as `django_q.tasks` has it: a new schedule, or an error.

`django_q.tasks.schedule` refuses a name already taken and returns the `Schedule` model it saved;
here the same call defines the schedule on the running server's scheduler and returns a
`ScheduleInfo` with that model's fields. (The scheduler's own `schedule` method, which
`init_schedule` functions may call at every start, keeps replacing a schedule of the same name.)
An unnamed schedule gets its function's dotted path as its name, with `-2`, `-3`... when taken,
since Django Q allows any number of unnamed schedules of one function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any

from taskcast import defaults
from taskcast.defaults import run_on_loop_thread
from taskcast.functions import dotted_path
from taskcast.schedules import Schedule, ScheduleEntry, ScheduleError
from taskcast.schedules.scheduler import Scheduler
from taskcast.spec import warn_ignored

__all__ = ["ScheduleInfo", "schedule"]


@dataclasses.dataclass(frozen=True)
class ScheduleInfo:
    """The fields of Django Q's `Schedule` model for a schedule just defined."""

    #: Django Q's primary key; here the name, a schedule's identity
    id: str
    name: str
    func: str
    hook: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    schedule_type: str
    minutes: int | None
    repeats: int
    next_run: datetime | None
    cron: str | None
    #: the id of the newest task it started (None until it has run)
    task: str | None
    cluster: str | None
    intended_date_kwarg: str | None

    def __str__(self) -> str:
        return self.func


#: the keywords of Taskcast's own that `Scheduler.schedule` takes besides Django Q's
_TASKCAST_OPTIONS = frozenset({"catch_up", "overlap", "backlog", "rule"})


def _free_name(scheduler: Scheduler, func: Any) -> str:
    path = func if isinstance(func, str) else dotted_path(func)
    name, number = path, 2
    while name in scheduler.entries:
        name, number = f"{path}-{number}", number + 1
    return name


def schedule(
    func: str | Callable[..., Any],
    *args: Any,
    name: str | None = None,
    hook: str | Callable[..., Any] | None = None,
    schedule_type: str = Schedule.ONCE,
    minutes: int | None = None,
    repeats: int = -1,
    next_run: datetime | None = None,
    cron: str | None = None,
    cluster: str | None = None,
    intended_date_kwarg: str | None = None,
    **kwargs: Any,
) -> ScheduleInfo:
    """Define a schedule as Django Q's `schedule()` does; ScheduleError if `name` is taken.

    Other keywords go to the function (and `q_options`, as in `async_task`); Taskcast's
    `catch_up`, `overlap`, `backlog` and `rule` are accepted too. `cluster` is ignored, with a
    warning, as `async_task`'s.
    """
    if cluster is not None:
        warn_ignored({"cluster": cluster})
    scheduler = defaults.SCHEDULER.get()

    def define() -> ScheduleEntry:
        if name is not None and name in scheduler.entries:
            raise ScheduleError(f"a schedule named {name!r} already exists")
        chosen = name if name is not None else _free_name(scheduler, func)
        return scheduler.schedule(
            func,
            *args,
            name=chosen,
            hook=hook,
            schedule_type=schedule_type,
            minutes=minutes,
            repeats=repeats,
            next_run=next_run,
            cron=cron,
            intended_date_kwarg=intended_date_kwarg,
            **kwargs,
        )

    entry = run_on_loop_thread(scheduler, define)
    return ScheduleInfo(
        id=entry.name,
        name=entry.name,
        func=entry.func,
        hook=hook if isinstance(hook, str) or hook is None else dotted_path(hook),
        args=entry.args,
        kwargs={key: value for key, value in kwargs.items() if key not in _TASKCAST_OPTIONS},
        schedule_type=schedule_type,
        minutes=minutes,
        repeats=entry.repeats,
        next_run=entry.next_run,
        cron=cron,
        task=entry.last_task,
        cluster=cluster,
        intended_date_kwarg=intended_date_kwarg,
    )

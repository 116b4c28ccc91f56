"""Defining schedules: Pytigon's `add_task`, Django Q's `schedule`, and `init_schedule` discovery.

Everything is checked when the schedule is defined (the function, its arguments, the rule, the
policies), so a mistake fails there rather than at 3 a.m. A schedule's name is its identity:
defining it again replaces the definition and keeps its state (paused, last run), and keeps its
next run when the rule is unchanged, so an `init_schedule` that runs at every start is harmless.
`Definitions` only makes the entries; whoever calls it keeps them (the scheduler, in its book).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pickle
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from taskcast.functions import dotted_path, import_callable
from taskcast.schedules.calendar import Schedule, django_q_rule
from taskcast.schedules.entry import CatchUp, Overlap, ScheduleEntry, check_policies
from taskcast.schedules.helpers import RuleLike, to_rule
from taskcast.schedules.pytigon import FROM_CODE, LiveCall, call_init_schedule
from taskcast.schedules.rules import Rule, ScheduleError
from taskcast.spec import KEYWORDS_TO_TASK, build_spec

logger = logging.getLogger(__name__)

_TICK = timedelta(microseconds=1)


class Definitions:
    """Turns what users write into checked, named entries; see the module docstring.

    It reads `entries` (the schedules kept so far) to carry their state over to a new definition
    and to find the schedules no `init_schedule` registers any more; it never changes them.
    """

    def __init__(
        self,
        entries: Mapping[str, ScheduleEntry],
        tz: tzinfo,
        clock: Callable[[], datetime],
        modules: Sequence[str],
    ) -> None:
        self.entries = entries
        self.tz = tz
        self.clock = clock
        self.modules = tuple(modules)
        self._origin: str | None = None
        self._registered: set[str] | None = None
        #: the schedules kept in memory only, by name (see `LiveCall`)
        self.live: dict[str, LiveCall] = {}

    def add_task(
        self, time_functions: RuleLike, task: Any, *args: Any, **kwargs: Any
    ) -> ScheduleEntry:
        """Pytigon's `add_task`: run `task(*args, **kwargs)` by a rule, a schedule string or a
        list of them. The schedule is named by the task's dotted path. Every keyword goes to the
        task, as in Pytigon (none is taken as a Django Q option)."""
        return self.define(
            task, args, kwargs, rule=to_rule(time_functions), q_options={KEYWORDS_TO_TASK: True}
        )

    def schedule(
        self,
        func: str | Callable[..., Any],
        *args: Any,
        name: str | None = None,
        hook: str | Callable[..., Any] | None = None,
        schedule_type: str = Schedule.ONCE,
        minutes: int | None = None,
        repeats: int = -1,
        next_run: datetime | str | None = None,
        cron: str | None = None,
        q_options: Mapping[str, Any] | None = None,
        intended_date_kwarg: str | None = None,
        catch_up: CatchUp = "once",
        overlap: Overlap = "skip",
        backlog: int = 10,
        rule: RuleLike | None = None,
        cluster: str | None = None,
        **kwargs: Any,
    ) -> ScheduleEntry:
        """Django Q's `schedule()`. Also: a Pytigon `rule` instead of a schedule type, and the
        catch-up and overlap policies. Other keywords go to the function, as in `async_task`."""
        if cluster is not None:
            raise ScheduleError("cluster= has no meaning here: every run starts in this server")
        options = dict(q_options) if q_options is not None else None
        if hook is not None:
            (options if options is not None else kwargs)["hook"] = hook
        start = self._moment(next_run) if next_run is not None else None
        if rule is not None:
            made = to_rule(rule)
            first = made.next_after((start or self.clock()) - _TICK, self.tz)
        else:
            anchor = start or self.clock()
            made = django_q_rule(schedule_type, anchor, self.tz, minutes, cron)
            first = made.next_after(anchor.replace(microsecond=0) - _TICK, self.tz)
        return self.define(
            func,
            args,
            kwargs,
            rule=made,
            first=first,
            name=name,
            repeats=repeats,
            q_options=options,
            intended_date_kwarg=intended_date_kwarg,
            policies=(catch_up, overlap, backlog),
            anchored=next_run is not None,
        )

    def _moment(self, value: datetime | str) -> datetime:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise ScheduleError(f"next_run {value!r} is not an ISO date and time") from None
        if not isinstance(value, datetime):
            raise ScheduleError(f"next_run must be a datetime, not {type(value).__name__}")
        return value if value.tzinfo is not None else value.replace(tzinfo=self.tz)

    def define(
        self,
        func: str | Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        rule: Rule,
        first: datetime | None = None,
        name: str | None = None,
        repeats: int = -1,
        q_options: dict[str, Any] | None = None,
        intended_date_kwarg: str | None = None,
        policies: tuple[CatchUp, Overlap, int] = ("once", "skip", 10),
        anchored: bool = True,
    ) -> ScheduleEntry:
        """Check one schedule and return its entry, carrying over the state of the one kept
        under its name; see the module docstring."""
        check_policies(*policies)
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < -1:
            raise ScheduleError(f"repeats must be -1 (for ever) or a count, not {repeats!r}")
        live = None
        if (
            self._origin is not None
            and not isinstance(func, str)
            and not _stored(func, args, kwargs)
        ):
            # Pytigon's init_schedule schedules nested functions and passes live objects.
            live = LiveCall(func, tuple(args), dict(kwargs))
            if not inspect.iscoroutinefunction(func):
                q_options = {**(q_options or {}), "executor": "thread"}
        spec = build_spec(func, tuple(args), dict(kwargs), q_options)
        if live is None and not isinstance(func, str) and _found(spec.func_path) is not func:
            raise ScheduleError(
                f"{spec.func_path} cannot be found again by its dotted path: schedule a function "
                "defined at the top level of a module"
            )
        if live is None:
            try:
                pickle.dumps((tuple(args), dict(kwargs), q_options))
            except Exception as exc:
                raise ScheduleError(
                    f"a schedule's arguments are stored, so they must pickle: {exc}"
                ) from None
        path = spec.func_path.replace(".<locals>.", ".")
        name = self._name(name, path)
        if live is None:
            self.live.pop(name, None)
        else:
            self.live[name] = live
        if first is None:
            first = rule.next_after(self.clock() - _TICK, self.tz)
        entry = ScheduleEntry(
            name,
            path,
            rule,
            tuple(args),
            dict(kwargs),
            q_options,
            repeats,
            *policies,
            intended_date_kwarg=intended_date_kwarg,
            origin=self._origin or "schedule",
            next_run=first if repeats else None,
        )
        old = self.entries.get(name)
        if old is not None:
            state = {"paused": old.paused, "last_run": old.last_run, "last_skip": old.last_skip}
            entry = entry.replace(last_task=old.last_task, **state)
            if old.rule == rule or (not anchored and old.rule.shape() == rule.shape()):
                entry = entry.replace(rule=old.rule, next_run=old.next_run, repeats=old.repeats)
        return entry

    def _name(self, name: str | None, path: str) -> str:
        if name is not None and (not isinstance(name, str) or not name.strip() or "/" in name):
            raise ScheduleError(f"a schedule's name is text without '/', not {name!r}")
        chosen = name if name is not None else path
        if len(chosen) > 200:
            raise ScheduleError("a schedule's name has at most 200 characters")
        if self._registered is not None:
            # Registering one function twice in init_schedule gives it two schedules.
            number = 2
            while name is None and chosen in self._registered:
                chosen, number = f"{path}-{number}", number + 1
            self._registered.add(chosen)
        return chosen

    def discover(self, scheduler: object) -> list[str]:
        """Call `init_schedule(scheduler, cmd, http)` of each task module; return the names of the schedules
        an earlier start registered that no init_schedule registered now (to delete them).

        The scheduler passes itself: a task module defines through it, and it keeps what the
        module defines; the definitions made meanwhile are named and marked as from code.
        """
        self._registered, failed = set(), set()
        try:
            for module_name in self.modules:
                try:
                    init = getattr(importlib.import_module(module_name), "init_schedule", None)
                except ImportError as exc:
                    logger.error("schedules: cannot import %s: %s", module_name, exc)
                    failed.add(FROM_CODE + module_name)
                    continue
                if not callable(init):
                    continue
                self._origin = FROM_CODE + module_name
                try:
                    call_init_schedule(init, scheduler)
                except Exception:
                    logger.exception("schedules: %s.init_schedule failed", module_name)
                    failed.add(self._origin)
            registered = self._registered
        finally:
            self._origin, self._registered = None, None
        return [
            name
            for name, entry in self.entries.items()
            if entry.origin.startswith(FROM_CODE)
            and entry.origin not in failed
            and name not in registered
        ]


def _found(path: str) -> object:
    try:
        return import_callable(path)
    except Exception:
        return None


def _stored(func: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """Whether a schedule can be stored: its function found by its path, its arguments pickled."""
    if _found(dotted_path(func)) is not func:
        return False
    try:
        pickle.dumps((tuple(args), dict(kwargs)))
    except Exception:
        return False
    return True

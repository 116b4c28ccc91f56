"""What Pytigon's `init_schedule(scheduler, cmd, http)` gets besides the helpers.

Pytigon's task runner calls `init_schedule(scheduler, cmd, http)`: `cmd` runs a Django management
command, `http` is an HTTP client on the embedded Django app. Taskcast has neither, so it passes
stand-ins that raise `NotSupportedError` naming what is missing when used. `PytigonScheduler` is
the part of the scheduler that mirrors Pytigon's `SChScheduler` (`get_tasks`, `remove_tasks`,
`clear`, ...); `LiveCall` is a run of a function that only the running process can call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo
from typing import Any, ClassVar, NamedTuple

from taskcast.defaults import run_on_loop_thread
from taskcast.publish import NotSupportedError
from taskcast.schedules.entry import ScheduleEntry
from taskcast.schedules.helpers import HELPERS
from taskcast.schedules.rules import Rule

logger = logging.getLogger(__name__)

#: what `origin` starts with for schedules an `init_schedule` function registered
FROM_CODE = "init_schedule:"


class Unsupported:
    """A stand-in for a Pytigon object Taskcast cannot offer: any use raises, naming it."""

    def __init__(self, name: str, what: str) -> None:
        self._name = name
        self._what = what

    def _refuse(self, use: str) -> NotSupportedError:
        return NotSupportedError(
            f"init_schedule's {self._name} ({self._what}) is not available in Taskcast: "
            f"{self._name}{use} cannot run"
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse("(...)")

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        raise self._refuse(f".{attribute}")

    def __repr__(self) -> str:
        return f"<{self._name}: not available in Taskcast>"


#: what Pytigon passes as `cmd` and `http`, as far as Taskcast can give them
CMD = Unsupported("cmd", "Pytigon's runner of Django management commands")
HTTP = Unsupported("http", "Pytigon's HTTP client on the embedded Django app")


def call_init_schedule(init: Callable[..., Any], scheduler: object) -> None:
    """Call `init_schedule` as Pytigon does, `(scheduler, cmd, http)`, or with the scheduler only
    when that is all it takes."""
    try:
        inspect.signature(init).bind(scheduler, CMD, HTTP)
    except TypeError:
        init(scheduler)
    except ValueError:  # no signature to read (a builtin): call it as Pytigon does
        init(scheduler, CMD, HTTP)
    else:
        init(scheduler, CMD, HTTP)


@dataclasses.dataclass(frozen=True)
class LiveCall:
    """A schedule's function and arguments kept as objects: a function defined inside
    `init_schedule`, or arguments that do not pickle (the scheduler itself, say). Such a schedule
    is kept in memory only and runs in the server's process (async on the loop, else a thread)."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class TaskRow(NamedTuple):
    """One of Pytigon's task rows: `row[4]` is the next run, `row[5]` the function's name."""

    task: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    rule: Rule
    next_run: datetime | None
    name: str


def function_name(entry: ScheduleEntry) -> str:
    """The name Pytigon knows a task by: its function's `__name__`."""
    return entry.func.rpartition(".")[2]


class PytigonScheduler:
    """Pytigon's `SChScheduler` methods, on the scheduler `init_schedule` receives."""

    tz: tzinfo

    @property
    def entries(self) -> Mapping[str, ScheduleEntry]:
        raise NotImplementedError

    @property
    def live(self) -> dict[str, LiveCall]:
        raise NotImplementedError

    # What `init_schedule(scheduler)` finds on its argument, as in Pytigon (short forms too).
    daily = staticmethod(HELPERS["daily"])
    hourly = staticmethod(HELPERS["hourly"])
    monthly = staticmethod(HELPERS["monthly"])
    in_minute_intervals = staticmethod(HELPERS["in_minute_intervals"])
    in_second_intervals = staticmethod(HELPERS["in_second_intervals"])
    M, d, h, m, s = monthly, daily, hourly, in_minute_intervals, in_second_intervals

    #: Pytigon's one-letter names of the helpers (`scheduler.fmap["d"]`, `scheduler.d(...)`)
    fmap: ClassVar[dict[str, Callable[..., Rule]]] = {k: HELPERS[k] for k in "Mdhms"}

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def running_task(self, name: str) -> str | None:
        raise NotImplementedError

    def on_loop_thread(self) -> bool:
        raise NotImplementedError

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        raise NotImplementedError

    def _delete_all(self, names: list[str]) -> None:
        # A task running in a thread may call clear(): the change is made on the loop's thread.
        def delete_all() -> None:
            for name in names:
                if name in self.entries:
                    self.delete(name)

        run_on_loop_thread(self, delete_all)

    def _pytigon_entries(self) -> list[ScheduleEntry]:
        return [e for e in self.entries.values() if e.origin.startswith(FROM_CODE)]

    def _row(self, entry: ScheduleEntry) -> TaskRow:
        live = self.live.get(entry.name)
        task = live.func if live else entry.func
        args, kwargs = (live.args, live.kwargs) if live else (entry.args, entry.kwargs)
        local = entry.next_run.astimezone(self.tz).replace(tzinfo=None) if entry.next_run else None
        return TaskRow(task, args, kwargs, entry.rule, local, function_name(entry))

    @property
    def tasks(self) -> list[TaskRow]:
        """Every schedule an `init_schedule` registered, as Pytigon's rows, soonest first."""
        rows = [self._row(e) for e in self._pytigon_entries()]
        return sorted(rows, key=lambda row: (row.next_run is None, row.next_run or datetime.min))

    def get_tasks(self, name: str) -> list[TaskRow]:
        """The rows of the schedules whose function is called `name` (or whose name it is)."""
        return [
            self._row(e)
            for e in self._pytigon_entries()
            if function_name(e) == name or e.name == name
        ]

    def remove_tasks(self, name: str) -> None:
        """Delete the schedules whose function is called `name` (or whose name it is)."""
        entries = self._pytigon_entries()
        self._delete_all([e.name for e in entries if function_name(e) == name or e.name == name])

    def clear(self) -> None:
        """Delete every schedule an `init_schedule` registered (those of `schedule()` stay)."""
        self._delete_all([e.name for e in self._pytigon_entries()])

    def add_rpc_fun(self, name: str, fun: Callable[..., Any]) -> None:
        """Pytigon serves these over XML-RPC when it has an RPC port; Taskcast has none, and
        ignores them as Pytigon does without a port."""
        logger.info("schedules: add_rpc_fun(%r) ignored: Taskcast has no XML-RPC server", name)

    def show_tasks(self) -> list[tuple[str, str, str, str]]:
        """(name, next run, args, kwargs) as text, as Pytigon's RPC call shows them."""
        return [(r.name, str(r.next_run), str(r.args), str(r.kwargs)) for r in self.tasks]

    def show_current_tasks(self) -> list[str]:
        """The names of the functions of the schedules with a run going on."""
        return [function_name(e) for e in self._pytigon_entries() if self.running_task(e.name)]

    def run(self) -> None:
        raise NotSupportedError(
            "scheduler.run(): the Taskcast server runs the schedules; init_schedule only adds them"
        )

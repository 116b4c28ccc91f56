"""The scheduler: starts the runs of stored schedules through the runner, in the server's process.

One timer (`DueTimer`), armed for the earliest next run and re-armed whenever a schedule changes,
wakes it; nothing polls. What happens to a run that is due, started, skipped or queued, and how
each run is watched to its end, is `ScheduleRuns`'s; runs missed while the server was down follow
the schedule's catch-up policy (`entry.due_runs`). The clock is injected, so tests move time by
hand. Plain asyncio: it never imports aiohttp.web.

The scheduler holds the schedules in a `ScheduleBook` (memory, written through to the store),
defines them through `Definitions`, and offers the console's operations (pause, resume, run now,
delete); it is the object `init_schedule(scheduler, cmd, http)` receives.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from taskcast import defaults
from taskcast.defaults import run_on_loop_thread
from taskcast.errors import NoRunnerError
from taskcast.runtime.runner import Runner
from taskcast.schedules.book import ScheduleBook
from taskcast.schedules.claims import DueClaims
from taskcast.schedules.clock import Clock, time_zone, utcnow
from taskcast.schedules.definitions import Definitions
from taskcast.schedules.entry import ScheduleBusyError, ScheduleEntry, UnknownScheduleError
from taskcast.schedules.helpers import RuleLike
from taskcast.schedules.pytigon import LiveCall, PytigonScheduler
from taskcast.schedules.runs import ScheduleRuns
from taskcast.schedules.store import ScheduleStore, Skip
from taskcast.schedules.timer import MAX_SLEEP, DueTimer
from taskcast.settings import Settings

__all__ = ["MAX_SLEEP", "Scheduler", "schedule"]


class Scheduler(PytigonScheduler):
    """Runs the stored schedules; see the module docstring. Methods run on the loop's thread.

    It is also what `init_schedule(scheduler, cmd, http)` receives: the Pytigon helpers and
    `SChScheduler`'s methods are on it, and `add_task` and `schedule` define through
    `Definitions` and keep the entry in the book.
    """

    def __init__(
        self, runner: Runner, store: ScheduleStore, settings: Settings, clock: Clock = utcnow
    ) -> None:
        self.tz = time_zone(settings.timezone)
        self.clock = clock
        self.runner = runner
        self.store = store
        self.settings = settings
        self.book = ScheduleBook(store)
        self.definitions = Definitions(self.book.entries, self.tz, clock, settings.task_modules)
        self.timer = DueTimer(self)
        self.runs = ScheduleRuns(self)
        #: whether runs are started: from `start` (if `Settings.scheduler`) until `stop`
        self.running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        #: the Redis engine's claims of due times (None on the memory engine: nothing is asked)
        self.claims: DueClaims | None = None

    @property
    def entries(self) -> dict[str, ScheduleEntry]:
        """The schedules by name (the book's)."""
        return self.book.entries

    @property
    def modules(self) -> tuple[str, ...]:
        return self.definitions.modules

    @property
    def live(self) -> dict[str, LiveCall]:
        """The schedules kept in memory only, by name (the definitions')."""
        return self.definitions.live

    # -- defining (see Definitions) --------------------------------------------------------------

    def add_task(
        self, time_functions: RuleLike, task: Any, *args: Any, **kwargs: Any
    ) -> ScheduleEntry:
        """Pytigon's `add_task`; see `Definitions.add_task`."""
        return self._keep(self.definitions.add_task(time_functions, task, *args, **kwargs))

    def schedule(self, func: str | Callable[..., Any], *args: Any, **kwargs: Any) -> ScheduleEntry:
        """Django Q's `schedule()` and Taskcast's policies; see `Definitions.schedule`."""
        return self._keep(self.definitions.schedule(func, *args, **kwargs))

    def define(
        self,
        func: str | Callable[..., Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        **options: Any,
    ) -> ScheduleEntry:
        """Check and keep one schedule; see `Definitions.define`."""
        return self._keep(self.definitions.define(func, args, kwargs, **options))

    def discover(self) -> list[str]:
        """Call each task module's `init_schedule(self, cmd, http)`; see `Definitions.discover`."""
        return self.definitions.discover(self)

    def _keep(self, entry: ScheduleEntry) -> ScheduleEntry:
        if entry.name in self.live:
            self.book.memory_only.add(entry.name)
        else:
            self.book.memory_only.discard(entry.name)
        self.changed(entry, entry.name)
        return entry

    # -- life cycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the stored schedules, register those of `init_schedule`, catch up, arm the timer."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        await self.book.load()
        for name in self.discover():
            self.delete(name)
        if self.claims is not None:
            self.runner.add_listener(self.runs.cluster_record)
        self.running = self.settings.scheduler
        self.run_due()

    async def stop(self) -> None:
        """Stop starting runs (those going on belong to the runner) and close the store."""
        self.running = False
        await self.timer.stop()
        if self.claims is not None:
            self.runner.remove_listener(self.runs.cluster_record)
        await self.runs.stop()
        await self.book.close()

    async def flush(self) -> None:
        """Wait until every change made so far is in the database."""
        await self.book.flush()

    async def idle(self) -> None:
        """Wait until no run started by the scheduler is going or waiting its turn."""
        await self.runs.idle()

    async def claims_answered(self) -> None:
        """Wait until the claims of the runs found due so far are answered and acted on (the
        Redis engine; at once elsewhere)."""
        await self.timer.claims_answered()

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise NoRunnerError("the scheduler has not been started")
        return self._loop

    # -- the timer and the runs (see DueTimer and ScheduleRuns) ---------------------------------

    @property
    def timer_target(self) -> datetime | None:
        """The next run the timer is armed for (None: no timer)."""
        return self.timer.target

    @property
    def timer_delay(self) -> float | None:
        """In how many seconds the timer fires (None: no timer)."""
        return self.timer.delay

    def arm(self) -> None:
        """Set the one timer for the earliest next run of an active schedule (none if none)."""
        self.timer.arm()

    def run_due(self) -> None:
        """Start (or skip, or queue) every run that is due now, then re-arm the timer."""
        self.timer.run_due()

    def changed(self, entry: ScheduleEntry | None, name: str) -> None:
        """Keep a change (None: deleted) in the book, which writes it, and re-arm the timer."""
        if entry is None:
            self.runs.drop_waiting(name)
            self.live.pop(name, None)
            self.book.remove(name)
        else:
            self.book.put(entry)
        if self._loop is not None:
            self.timer.arm()

    def start_run(self, entry: ScheduleEntry, due: datetime) -> str:
        """Submit one run of `entry` to the runner and watch it; raises what `submit` raises."""
        return self.runs.start(entry, due)

    # -- what the pages and the API do -----------------------------------------------------------

    def get(self, name: str) -> ScheduleEntry:
        entry = self.entries.get(name)
        if entry is None:
            raise UnknownScheduleError(f"no schedule named {name!r}")
        return entry

    def running_task(self, name: str) -> str | None:
        """The id of the schedule's run still going, if any."""
        return self.runs.running_task(name)

    async def skips(self, name: str, limit: int = 20) -> list[Skip]:
        self.get(name)
        return await self.book.skips(name, limit)

    def pause(self, name: str) -> ScheduleEntry:
        """No more runs until resumed; runs waiting their turn are dropped."""
        entry = self.get(name).replace(paused=True)
        self.runs.drop_waiting(name)
        self.changed(entry, name)
        return entry

    def resume(self, name: str) -> ScheduleEntry:
        """Runs again from the next time its rule gives after now (missed ones are not caught up)."""
        entry = self.get(name)
        if entry.paused:
            now = self.clock()
            upcoming = entry.next_run
            if upcoming is not None and upcoming <= now:
                upcoming = entry.rule.next_after(now, self.tz)
            entry = entry.replace(paused=False, next_run=upcoming if entry.repeats else None)
            self.changed(entry, name)
        return entry

    def run_now(self, name: str) -> str:
        """Start a run at once, outside the rule (next_run and repeats stay as they are)."""
        entry = self.get(name)
        running = self.runs.running_task(name)
        if running is not None:
            raise ScheduleBusyError(f"schedule {name!r} has a run still going: task {running}")
        return self.start_run(entry, self.clock())

    def delete(self, name: str) -> None:
        """Forget the schedule (a run still going goes on as an ordinary task)."""
        self.get(name)
        self.changed(None, name)


def schedule(func: Any, *args: Any, **kwargs: Any) -> ScheduleEntry:
    """Django Q's `schedule()` on the running server's scheduler; see `Scheduler.schedule`."""
    scheduler = defaults.SCHEDULER.get()
    return run_on_loop_thread(scheduler, lambda: scheduler.schedule(func, *args, **kwargs))

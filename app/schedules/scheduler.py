"""The scheduler: starts the runs of stored schedules through the runner, in the server's process.

One timer, armed for the earliest next run and re-armed whenever a schedule changes, wakes it;
nothing polls. Each run is an ordinary task (`Runner.submit`) whose record names its schedule.
A run due while the previous one still runs is skipped and recorded (or queued, if the schedule
says so); runs missed while the server was down follow the schedule's catch-up policy
(`entry.due_runs`). The clock is injected, so tests move time by hand. Plain asyncio: it never
imports aiohttp.web.

The scheduler holds the schedules in a `ScheduleBook` (memory, written through to the store) and
defines them through `Definitions`; it is the object `init_schedule(scheduler, cmd, http)` receives.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from taskcast import defaults
from taskcast.defaults import run_on_loop_thread
from taskcast.errors import NoRunnerError, TaskcastError
from taskcast.records import TaskRecord
from taskcast.runtime.runner import Runner
from taskcast.schedules.book import ScheduleBook
from taskcast.schedules.claims import ClaimedRuns, DueClaims, claim_due
from taskcast.schedules.clock import Clock, time_zone, utcnow
from taskcast.schedules.definitions import Definitions
from taskcast.schedules.entry import (
    ScheduleBusyError,
    ScheduleEntry,
    UnknownScheduleError,
    due_runs,
    run_spec,
)
from taskcast.schedules.helpers import RuleLike
from taskcast.schedules.pytigon import LiveCall, PytigonScheduler
from taskcast.schedules.rules import Once
from taskcast.schedules.store import ScheduleStore, Skip
from taskcast.settings import Settings

logger = logging.getLogger(__name__)

#: the timer re-reads the clock at least this often (seconds), in case the wall clock jumped
MAX_SLEEP = 3600.0


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
        self._active: dict[str, str] = {}  # schedule -> task id of its run still going
        self._waiting: dict[str, collections.deque[datetime]] = {}  # runs waiting their turn
        self._timer: asyncio.TimerHandle | None = None
        #: the next run the timer is armed for, and in how many seconds it fires (None: no timer)
        self.timer_target: datetime | None = None
        self.timer_delay: float | None = None
        self._watchers: set[asyncio.Task[None]] = set()
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        #: the Redis engine's claims of due times (None on the memory engine: nothing is asked)
        self.claims: DueClaims | None = None
        self._claiming: asyncio.Task[None] | None = None

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
            self.runner.add_listener(self._cluster_record)
        self._running = self.settings.scheduler
        self.run_due()

    async def stop(self) -> None:
        """Stop starting runs (those going on belong to the runner) and close the store."""
        self._running = False
        self._disarm()
        if self._claiming is not None:
            self._claiming.cancel()
            await asyncio.gather(self._claiming, return_exceptions=True)
        if self.claims is not None:
            self.runner.remove_listener(self._cluster_record)
        for watcher in self._watchers:
            watcher.cancel()
        if self._watchers:
            await asyncio.wait(self._watchers)
        await self.book.close()

    async def flush(self) -> None:
        """Wait until every change made so far is in the database."""
        await self.book.flush()

    async def idle(self) -> None:
        """Wait until no run started by the scheduler is going or waiting its turn."""
        while self._watchers:
            await asyncio.wait(set(self._watchers))

    async def claims_answered(self) -> None:
        """Wait until the claims of the runs found due so far are answered and acted on (the
        Redis engine; at once elsewhere)."""
        if self._claiming is not None:
            await asyncio.shield(self._claiming)

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise NoRunnerError("the scheduler has not been started")
        return self._loop

    # -- the timer -------------------------------------------------------------------------------

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.timer_target = self.timer_delay = None

    def arm(self) -> None:
        """Set the one timer for the earliest next run of an active schedule (none if none)."""
        self._disarm()
        if not self._running:
            return
        upcoming = [e.next_run for e in self.entries.values() if e.next_run and not e.paused]
        if not upcoming:
            return
        self.timer_target = min(upcoming)
        delay = (self.timer_target - self.clock()).total_seconds()
        self.timer_delay = min(max(delay, 0.0), MAX_SLEEP)
        self._timer = self.loop.call_later(self.timer_delay, self.run_due)

    def changed(self, entry: ScheduleEntry | None, name: str) -> None:
        """Keep a change (None: deleted) in the book, which writes it, and re-arm the timer."""
        if entry is None:
            self._waiting.pop(name, None)
            self.live.pop(name, None)
            self.book.remove(name)
        else:
            self.book.put(entry)
        if self._loop is not None:
            self.arm()

    # -- due runs --------------------------------------------------------------------------------

    def run_due(self) -> None:
        """Start (or skip, or queue) every run that is due now, then re-arm the timer."""
        if not self._running:
            return
        if self.claims is not None:
            self._claim_then_run()
            return
        now = self.clock()
        try:
            for entry in self._due_entries(now):
                self._due_safely(entry, now)
        finally:
            self.arm()

    def _due_entries(self, now: datetime) -> list[ScheduleEntry]:
        due = [
            e for e in self.entries.values() if not e.paused and e.next_run and e.next_run <= now
        ]
        return sorted(due, key=lambda e: (e.next_run, e.name))

    def _due_safely(
        self, entry: ScheduleEntry, now: datetime, claimed: ClaimedRuns | None = None
    ) -> None:
        try:
            self._due(entry, now, claimed)
        except Exception as exc:  # a bug must not stop the other schedules
            logger.exception("schedule %r failed; it is paused", entry.name)
            reason = f"paused after an internal error: {exc!r}"
            self.changed(entry.replace(paused=True, last_skip=reason), entry.name)

    def _claim_then_run(self) -> None:
        """On a cluster: claim the due runs in Redis, then start those that are this node's.
        Claiming waits on Redis, so it is a task of its own; one pass at a time, and the timer
        is armed again when it ends (a timer that fires meanwhile finds the pass going)."""
        if self._claiming is None:
            self._disarm()
            self._claiming = self.loop.create_task(self._claimed_pass(self.clock()))

    async def _claimed_pass(self, now: datetime) -> None:
        assert self.claims is not None
        try:
            for entry in self._due_entries(now):
                claimed = await claim_due(self.claims, entry, now, self.tz)
                current = self.entries.get(entry.name)
                # Paused, deleted or moved while Redis answered: the next pass sees it anew.
                if current and not current.paused and current.next_run == entry.next_run:
                    self._due_safely(current, now, claimed)
        finally:
            self._claiming = None
            self.arm()

    def _due(self, entry: ScheduleEntry, now: datetime, claimed: ClaimedRuns | None) -> None:
        plan = due_runs(entry, now, self.tz) if claimed is None else claimed.plan
        for moment, queue in plan.runs:
            if claimed is not None and moment in claimed.lost:
                self._taken_elsewhere(entry, moment)
            elif claimed is not None and moment in claimed.unclaimed:
                self._skip(entry, moment, f"not started on this node: {claimed.error}")
            else:
                self._occur(entry, moment, queue=queue)
        if plan.skip is not None and (claimed is None or plan.skip[0] not in claimed.lost):
            self._skip(entry, *plan.skip)
        self._advance(entry.name, plan.next_run)
        if isinstance(entry.rule, Once) and entry.origin == "schedule":
            self._end_once(entry.name)

    def _end_once(self, name: str) -> None:
        """Django Q ends a ONCE schedule with its run: it is deleted, unless it was given a
        positive `repeats`, which it keeps, set to 0 (no more runs)."""
        entry = self.entries.get(name)
        if entry is not None and entry.repeats < 0:
            self.delete(name)
        elif entry is not None:
            self.changed(entry.replace(repeats=0, next_run=None), name)

    def _advance(self, name: str, next_run: datetime | None) -> None:
        entry = self.entries.get(name)
        if entry is not None:
            self.changed(entry.replace(next_run=next_run if entry.repeats else None), name)

    def _occur(self, entry: ScheduleEntry, due: datetime, *, queue: bool) -> None:
        """Start a run, or apply the overlap policy when the previous one is still going."""
        entry = self.entries.get(entry.name, entry)
        if entry.repeats == 0:
            return
        running = self._active.get(entry.name)
        if running is None and self.claims is not None:
            running = self._run_elsewhere(entry.name)
        if running is None:
            self._start(entry, due, counted=True)
            return
        waiting = self._waiting.setdefault(entry.name, collections.deque())
        if not queue:
            self._skip(entry, due, f"the previous run ({running}) was still running")
        elif len(waiting) >= entry.backlog:
            self._skip(entry, due, f"{entry.backlog} runs were already waiting their turn")
        else:
            waiting.append(due)
            self._count(entry.name)

    def _taken_elsewhere(self, entry: ScheduleEntry, due: datetime) -> None:
        """Another node of the cluster took this due time: the run is the cluster's, so it
        counts against `repeats` here too, and is the last run; its task reaches this node's
        store (and `last_task`, see `_cluster_record`) through the records of the cluster."""
        logger.debug("schedule %r: the run due at %s is another node's", entry.name, due)
        current = self.entries.get(entry.name, entry)
        if current.repeats == 0:
            return
        self.changed(current.replace(last_run=due, last_skip=None), entry.name)
        self._count(entry.name)

    def _run_elsewhere(self, name: str) -> str | None:
        """On a cluster: an unfinished run of the schedule that another node started, as this
        node's copy of the records says; watched as this node's own runs are."""
        for record in self.runner.store.list_tasks(schedule=name, limit=10):
            if not record.status.is_final:
                self._active[name] = record.id
                self._watch_run(name, record.id)
                return record.id
        return None

    def _cluster_record(self, record: TaskRecord) -> None:
        """A runner listener on a cluster: the newest run of a schedule, whichever node
        started it, becomes its `last_task`."""
        entry = self.entries.get(record.schedule) if record.schedule else None
        if entry is None or entry.last_task == record.id or record.enqueued is None:
            return
        last = self.runner.get(entry.last_task) if entry.last_task else None
        if last is None or last.enqueued is None or last.enqueued < record.enqueued:
            self.changed(entry.replace(last_task=record.id), entry.name)

    def _count(self, name: str) -> None:
        entry = self.entries[name]
        if entry.repeats > 0:
            self.changed(entry.replace(repeats=entry.repeats - 1), name)

    def _skip(self, entry: ScheduleEntry, due: datetime, reason: str) -> None:
        logger.info("schedule %r: the run due at %s is skipped: %s", entry.name, due, reason)
        current = self.entries.get(entry.name, entry)
        self.changed(current.replace(last_run=due, last_skip=reason), entry.name)
        self.book.add_skip(Skip(entry.name, due, self.clock(), reason))

    def _start(self, entry: ScheduleEntry, due: datetime, *, counted: bool) -> str | None:
        try:
            task_id = self.start_run(entry, due)
        except TaskcastError as exc:
            self._skip(entry, due, f"could not start: {exc}")
            return None
        if counted:
            self._count(entry.name)
        return task_id

    def start_run(self, entry: ScheduleEntry, due: datetime) -> str:
        """Submit one run of `entry` to the runner and watch it; raises what `submit` raises."""
        timeout = self.settings.default_timeout
        live = self.live.get(entry.name)
        call = (live.func, live.args, live.kwargs) if live is not None else None
        task_id = self.runner.submit(run_spec(entry, due, self.tz, timeout, call))
        self._active[entry.name] = task_id
        current = self.entries.get(entry.name, entry)
        self.changed(current.replace(last_run=due, last_task=task_id, last_skip=None), entry.name)
        self._watch_run(entry.name, task_id)
        return task_id

    def _watch_run(self, name: str, task_id: str) -> None:
        watcher = self.loop.create_task(self._watch(name, task_id))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, name: str, task_id: str) -> None:
        try:
            await self.runner.wait(task_id)
        except TaskcastError:
            pass
        if self._active.get(name) == task_id:
            del self._active[name]
        waiting = self._waiting.get(name)
        while self._running and waiting and name in self.entries:
            if self._start(self.entries[name], waiting.popleft(), counted=False) is not None:
                break

    # -- what the pages and the API do -----------------------------------------------------------

    def get(self, name: str) -> ScheduleEntry:
        entry = self.entries.get(name)
        if entry is None:
            raise UnknownScheduleError(f"no schedule named {name!r}")
        return entry

    def running_task(self, name: str) -> str | None:
        """The id of the schedule's run still going, if any."""
        return self._active.get(name)

    async def skips(self, name: str, limit: int = 20) -> list[Skip]:
        self.get(name)
        return await self.book.skips(name, limit)

    def pause(self, name: str) -> ScheduleEntry:
        """No more runs until resumed; runs waiting their turn are dropped."""
        entry = self.get(name).replace(paused=True)
        self._waiting.pop(name, None)
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
        running = self._active.get(name)
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

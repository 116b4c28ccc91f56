"""What happens when a schedule's run is due: it starts, is skipped, waits its turn, or is
another node's; and each run started is watched to its end.

Each run is an ordinary task (`Runner.submit`) whose record names its schedule. A run due while
the previous one still runs is skipped and recorded, or queued if the schedule says so (up to its
`backlog`); a queued run starts when the one before it ends. On the Redis engine a due time
another node claimed counts here too, and a run another node started is watched as if it were
this node's, so that the overlap policy holds across the cluster.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from taskcast.errors import TaskcastError
from taskcast.records import TaskRecord
from taskcast.schedules.claims import ClaimedRuns
from taskcast.schedules.entry import ScheduleEntry, due_runs, run_spec
from taskcast.schedules.rules import Once
from taskcast.schedules.store import Skip

if TYPE_CHECKING:
    from taskcast.schedules.scheduler import Scheduler

logger = logging.getLogger(__name__)


class ScheduleRuns:
    """The runs of the scheduler's schedules; see the module docstring."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._active: dict[str, str] = {}  # schedule -> task id of its run still going
        self._waiting: dict[str, collections.deque[datetime]] = {}  # runs waiting their turn
        self._watchers: set[asyncio.Task[None]] = set()

    def running_task(self, name: str) -> str | None:
        """The id of the schedule's run still going, if any."""
        return self._active.get(name)

    def drop_waiting(self, name: str) -> None:
        """Forget the schedule's runs waiting their turn."""
        self._waiting.pop(name, None)

    async def idle(self) -> None:
        """Wait until no run started by the scheduler is going or waiting its turn."""
        while self._watchers:
            await asyncio.wait(set(self._watchers))

    async def stop(self) -> None:
        """Stop watching (the runs themselves go on: they belong to the runner)."""
        for watcher in self._watchers:
            watcher.cancel()
        if self._watchers:
            await asyncio.wait(self._watchers)

    # -- a schedule is due -----------------------------------------------------------------------

    def due(self, entry: ScheduleEntry, now: datetime, claimed: ClaimedRuns | None) -> None:
        """Act on every run of `entry` due by `now` (as the cluster's claims say, if any), then
        move it to its next run."""
        plan = due_runs(entry, now, self.scheduler.tz) if claimed is None else claimed.plan
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
        entry = self.scheduler.entries.get(name)
        if entry is not None and entry.repeats < 0:
            self.scheduler.delete(name)
        elif entry is not None:
            self.scheduler.changed(entry.replace(repeats=0, next_run=None), name)

    def _advance(self, name: str, next_run: datetime | None) -> None:
        entry = self.scheduler.entries.get(name)
        if entry is not None:
            self.scheduler.changed(
                entry.replace(next_run=next_run if entry.repeats else None), name
            )

    def _occur(self, entry: ScheduleEntry, due: datetime, *, queue: bool) -> None:
        """Start a run, or apply the overlap policy when the previous one is still going."""
        entry = self.scheduler.entries.get(entry.name, entry)
        if entry.repeats == 0:
            return
        running = self._active.get(entry.name)
        if running is None and self.scheduler.claims is not None:
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

    def _count(self, name: str) -> None:
        entry = self.scheduler.entries[name]
        if entry.repeats > 0:
            self.scheduler.changed(entry.replace(repeats=entry.repeats - 1), name)

    def _skip(self, entry: ScheduleEntry, due: datetime, reason: str) -> None:
        logger.info("schedule %r: the run due at %s is skipped: %s", entry.name, due, reason)
        scheduler = self.scheduler
        current = scheduler.entries.get(entry.name, entry)
        scheduler.changed(current.replace(last_run=due, last_skip=reason), entry.name)
        scheduler.book.add_skip(Skip(entry.name, due, scheduler.clock(), reason))

    # -- on a cluster ----------------------------------------------------------------------------

    def _taken_elsewhere(self, entry: ScheduleEntry, due: datetime) -> None:
        """Another node of the cluster took this due time: the run is the cluster's, so it
        counts against `repeats` here too, and is the last run; its task reaches this node's
        store (and `last_task`, see `cluster_record`) through the records of the cluster."""
        logger.debug("schedule %r: the run due at %s is another node's", entry.name, due)
        current = self.scheduler.entries.get(entry.name, entry)
        if current.repeats == 0:
            return
        self.scheduler.changed(current.replace(last_run=due, last_skip=None), entry.name)
        self._count(entry.name)

    def _run_elsewhere(self, name: str) -> str | None:
        """On a cluster: an unfinished run of the schedule that another node started, as this
        node's copy of the records says; watched as this node's own runs are."""
        for record in self.scheduler.runner.store.list_tasks(schedule=name, limit=10):
            if not record.status.is_final:
                self._active[name] = record.id
                self._watch_run(name, record.id)
                return record.id
        return None

    def cluster_record(self, record: TaskRecord) -> None:
        """A runner listener on a cluster: the newest run of a schedule, whichever node
        started it, becomes its `last_task`."""
        scheduler = self.scheduler
        entry = scheduler.entries.get(record.schedule) if record.schedule else None
        if entry is None or entry.last_task == record.id or record.enqueued is None:
            return
        last = scheduler.runner.get(entry.last_task) if entry.last_task else None
        if last is None or last.enqueued is None or last.enqueued < record.enqueued:
            scheduler.changed(entry.replace(last_task=record.id), entry.name)

    # -- starting and watching a run -------------------------------------------------------------

    def _start(self, entry: ScheduleEntry, due: datetime, *, counted: bool) -> str | None:
        try:
            task_id = self.start(entry, due)
        except TaskcastError as exc:
            self._skip(entry, due, f"could not start: {exc}")
            return None
        if counted:
            self._count(entry.name)
        return task_id

    def start(self, entry: ScheduleEntry, due: datetime) -> str:
        """Submit one run of `entry` to the runner and watch it; raises what `submit` raises."""
        scheduler = self.scheduler
        timeout = scheduler.settings.default_timeout
        live = scheduler.live.get(entry.name)
        call = (live.func, live.args, live.kwargs) if live is not None else None
        task_id = scheduler.runner.submit(run_spec(entry, due, scheduler.tz, timeout, call))
        self._active[entry.name] = task_id
        current = scheduler.entries.get(entry.name, entry)
        scheduler.changed(
            current.replace(last_run=due, last_task=task_id, last_skip=None), entry.name
        )
        self._watch_run(entry.name, task_id)
        return task_id

    def _watch_run(self, name: str, task_id: str) -> None:
        watcher = self.scheduler.loop.create_task(self._watch(name, task_id))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, name: str, task_id: str) -> None:
        scheduler = self.scheduler
        try:
            await scheduler.runner.wait(task_id)
        except TaskcastError:
            pass
        if self._active.get(name) == task_id:
            del self._active[name]
        waiting = self._waiting.get(name)
        while scheduler.running and waiting and name in scheduler.entries:
            if self._start(scheduler.entries[name], waiting.popleft(), counted=False) is not None:
                break

"""The scheduler's one timer and the due passes it wakes.

The timer is armed for the earliest next run of an active schedule and re-armed whenever a
schedule changes; nothing polls. When it fires, a due pass hands every schedule whose next run
has come to `ScheduleRuns.due`, soonest first. On the Redis engine the pass first claims each
due time in the cluster (`claim_due`), so it waits on Redis and runs as a task of its own.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from taskcast.schedules.claims import ClaimedRuns, claim_due
from taskcast.schedules.entry import ScheduleEntry

if TYPE_CHECKING:
    from taskcast.schedules.scheduler import Scheduler

logger = logging.getLogger(__name__)

#: the timer re-reads the clock at least this often (seconds), in case the wall clock jumped
MAX_SLEEP = 3600.0


class DueTimer:
    """Wakes the scheduler when a run is due and runs the due pass; see the module docstring."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._timer: asyncio.TimerHandle | None = None
        #: the next run the timer is armed for, and in how many seconds it fires (None: no timer)
        self.target: datetime | None = None
        self.delay: float | None = None
        self._claiming: asyncio.Task[None] | None = None

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.target = self.delay = None

    def arm(self) -> None:
        """Set the one timer for the earliest next run of an active schedule (none if none)."""
        self.disarm()
        scheduler = self.scheduler
        if not scheduler.running:
            return
        entries = scheduler.entries.values()
        upcoming = [e.next_run for e in entries if e.next_run and not e.paused]
        if not upcoming:
            return
        self.target = min(upcoming)
        delay = (self.target - scheduler.clock()).total_seconds()
        self.delay = min(max(delay, 0.0), MAX_SLEEP)
        self._timer = scheduler.loop.call_later(self.delay, self.run_due)

    async def stop(self) -> None:
        """Disarm, and end a due pass still waiting on its claims."""
        self.disarm()
        if self._claiming is not None:
            self._claiming.cancel()
            await asyncio.gather(self._claiming, return_exceptions=True)

    async def claims_answered(self) -> None:
        """Wait until the claims of the runs found due so far are answered and acted on."""
        if self._claiming is not None:
            await asyncio.shield(self._claiming)

    def run_due(self) -> None:
        """Start (or skip, or queue) every run that is due now, then re-arm the timer."""
        scheduler = self.scheduler
        if not scheduler.running:
            return
        if scheduler.claims is not None:
            self._claim_then_run()
            return
        now = scheduler.clock()
        try:
            for entry in self._due_entries(now):
                self._due_safely(entry, now)
        finally:
            self.arm()

    def _due_entries(self, now: datetime) -> list[ScheduleEntry]:
        due = [
            e
            for e in self.scheduler.entries.values()
            if not e.paused and e.next_run and e.next_run <= now
        ]
        return sorted(due, key=lambda e: (e.next_run, e.name))

    def _due_safely(
        self, entry: ScheduleEntry, now: datetime, claimed: ClaimedRuns | None = None
    ) -> None:
        try:
            self.scheduler.runs.due(entry, now, claimed)
        except Exception as exc:  # a bug must not stop the other schedules
            logger.exception("schedule %r failed; it is paused", entry.name)
            reason = f"paused after an internal error: {exc!r}"
            self.scheduler.changed(entry.replace(paused=True, last_skip=reason), entry.name)

    def _claim_then_run(self) -> None:
        """On a cluster: claim the due runs in Redis, then start those that are this node's.
        Claiming waits on Redis, so it is a task of its own; one pass at a time, and the timer
        is armed again when it ends (a timer that fires meanwhile finds the pass going)."""
        if self._claiming is None:
            self.disarm()
            scheduler = self.scheduler
            self._claiming = scheduler.loop.create_task(self._claimed_pass(scheduler.clock()))

    async def _claimed_pass(self, now: datetime) -> None:
        scheduler = self.scheduler
        assert scheduler.claims is not None
        try:
            for entry in self._due_entries(now):
                claimed = await claim_due(scheduler.claims, entry, now, scheduler.tz)
                current = scheduler.entries.get(entry.name)
                # Paused, deleted or moved while Redis answered: the next pass sees it anew.
                if current and not current.paused and current.next_run == entry.next_run:
                    self._due_safely(current, now, claimed)
        finally:
            self._claiming = None
            self.arm()

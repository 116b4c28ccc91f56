"""Runs stopped before their end: a task cancelled, or every run when the runner closes.

A run not started yet ends at once; a started one is stopped by its execution and ends when its
attempt ends. Closing ends the runs not started yet as cancelled, gives the running ones their
grace, then stops them and waits a little longer for their ends.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING

from taskcast.errors import UnknownTaskError
from taskcast.records import TaskStatus
from taskcast.runtime.execution import Execution, OnEnd, Run
from taskcast.runtime.queue import RunQueue
from taskcast.store.store import Store

if TYPE_CHECKING:
    from taskcast.cluster.tasks import TaskPlane

__all__ = ["Stopper"]


class Stopper:
    """Stops the runner's runs before their end; see the module docstring."""

    __slots__ = (
        "_active",
        "_cancel_grace",
        "_execution",
        "_finish",
        "_intake",
        "_queue",
        "_store",
    )

    def __init__(
        self,
        active: dict[str, Run],
        intake: collections.deque[Run],
        queue: RunQueue,
        execution: Execution,
        finish: OnEnd,
        store: Store,
        cancel_grace: float,
    ) -> None:
        #: the runner's runs by task id, and those submitted and not yet announced and queued
        self._active = active
        self._intake = intake
        self._queue = queue
        self._execution = execution
        self._finish = finish
        self._store = store
        self._cancel_grace = cancel_grace

    def cancel(self, task_id: str, cluster: TaskPlane | None) -> bool:
        """Cancel a queued or running task; False if it has already finished."""
        run = self._active.get(task_id)
        if run is None:
            if cluster is not None:
                return cluster.cancel(task_id)
            if self._store.get_task(task_id) is None:
                raise UnknownTaskError(f"no task with id {task_id!r}")
            return False
        self.stop(run, TaskStatus.CANCELLED)
        return True

    def stop(self, run: Run, reason: TaskStatus) -> None:
        """Stop `run`, queued or running; it ends as `reason`."""
        if run.record.status is TaskStatus.QUEUED:
            if not run.announced:
                self._intake.remove(run)  # rare, and only this one run: O(n) is fine
            self._queue.remove(run)
            self._finish(run, reason, None, f"{reason.value} before it started")
        else:
            self._execution.stop(run, reason)

    async def stop_all(self, grace: float | None) -> None:
        """Cancel every run: those not started yet at once, the running ones once they have had
        `grace` seconds to end."""
        unqueued = [run for run in self._intake if run.id in self._active]
        self._intake.clear()
        for run in [*unqueued, *self._queue.drain()]:
            self._finish(
                run,
                TaskStatus.CANCELLED,
                None,
                "cancelled: the server shut down before the task started",
            )
        running = [run.done for run in self._active.values()]
        if running and grace:
            await asyncio.wait(running, timeout=grace)
        for run in list(self._active.values()):
            self.stop(run, TaskStatus.CANCELLED)
        remaining = [run.done for run in self._active.values()]
        if remaining:
            await asyncio.wait(remaining, timeout=self._cancel_grace + 5)

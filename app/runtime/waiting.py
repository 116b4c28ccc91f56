"""Waiting for the ends of runs: one task's final record, the end of any task of a group, and a
task waited for as a plain call (`sync=True`): its record, or its exception raised.

A run the runner holds is waited for on its own future, shielded, so a waiter that gives up
never cancels the run; a task the runner does not hold is the Redis engine's (it may run on
another node), or has ended and is read from the store.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from taskcast.errors import TaskCancelled, UnknownTaskError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.execution import Run, short_error
from taskcast.store.store import Store

if TYPE_CHECKING:
    from taskcast.cluster.tasks import TaskPlane

__all__ = ["EndWaits"]


class EndWaits:
    """The runner's waits for the ends of tasks; see the module docstring."""

    __slots__ = ("_active", "_store")

    def __init__(self, active: dict[str, Run], store: Store) -> None:
        #: the runner's runs by task id, until each one's end
        self._active = active
        self._store = store

    async def wait(
        self, task_id: str, timeout: float | None, cluster: TaskPlane | None
    ) -> TaskRecord:
        """The record once the task has finished; TimeoutError if it has not within `timeout`."""
        run = self._active.get(task_id)
        if run is not None:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(run.done)
        if cluster is not None:
            return await cluster.wait(task_id, timeout)
        record = self._store.get_task(task_id)
        if record is None:
            raise UnknownTaskError(f"no task with id or name {task_id!r}")
        return record

    async def wait_as_call(self, task_id: str, cluster: TaskPlane | None) -> TaskRecord:
        """The record once the task has succeeded; else the task's exception raised again, or
        TaskCancelled or RuntimeError saying how it ended."""
        run = self._active.get(task_id)
        if run is not None:
            record = await asyncio.shield(run.done)
        else:  # the Redis engine: it may run on another node
            record = await self.wait(task_id, None, cluster)
        if run is not None and run.exception is not None:
            raise run.exception
        if record.status is not TaskStatus.SUCCESS and record.status is not TaskStatus.FAILED:
            raise TaskCancelled(f"task {task_id} ended as {record.status.value}")
        if record.status is TaskStatus.FAILED:
            raise RuntimeError(f"task {task_id} failed: {short_error(record.error)}")
        return record

    async def wait_any(self, group: str) -> bool:
        """Wait until one unfinished task of `group` ends; False at once if none is unfinished."""
        pending = [run.done for run in self._active.values() if run.spec.group == group]
        if not pending:
            return False
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        return True

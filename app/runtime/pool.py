"""The process pool: single-worker slots (`slot.py`) that can be stopped and replaced one by one.

Killing the worker of one slot (to cancel or time out its task, or because it crashed) breaks only
that slot; the slot is replaced in the background and no other task notices. A task handed to a
slot whose worker is already gone (`SlotBroken`) takes the next free slot ahead of the queue.

A replacement that cannot start (its initializer fails or hangs) is tried again after a growing
delay, `RESTART_DELAY_FIRST` doubling to `RESTART_DELAY_MAX`, for as long as the pool is open;
`health()` tells how many workers are alive, being replaced, and how many starts failed in a row.
The pool holds the write end of the workers' lifeline (see `worker`): when the server ends, in
whatever way, every worker sees it end and exits.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Literal

from taskcast.runtime.pipe import Events, Output
from taskcast.runtime.slot import Slot, WorkerDied, WorkerSetup, WorkerStartFailed

logger = logging.getLogger(__name__)

#: seconds before a failed replacement is tried again; the delay doubles up to RESTART_DELAY_MAX
RESTART_DELAY_FIRST = 1.0
RESTART_DELAY_MAX = 60.0

PoolStatus = Literal["ok", "degraded", "failing"]


@dataclasses.dataclass(frozen=True, slots=True)
class PoolHealth:
    """The pool's state, as `/api/health` shows it."""

    #: slots in the pool
    size: int
    #: slots whose worker is started and not known to be dead
    alive: int
    #: slots whose task holds them
    busy: int
    #: slots whose dead worker is being replaced
    replacing: int
    #: worker starts that failed in a row (0 once one succeeds)
    failed_starts: int
    #: why the last start failed, while starts fail
    last_error: str | None

    @property
    def status(self) -> PoolStatus:
        """ "failing": no worker is alive and starting one fails; "degraded": some are dead."""
        if self.alive == 0 and self.failed_starts:
            return "failing"
        return "ok" if self.alive == self.size else "degraded"

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, **dataclasses.asdict(self)}


class ProcessPool:
    """A fixed number of slots; a broken slot is replaced by a fresh one in the background."""

    def __init__(
        self,
        size: int,
        start_method: str,
        on_message: Callable[[Events | Output], None],
        on_slot_free: Callable[[], None],
        initializer: str | None = None,
        *,
        cancel_grace: float = 2.0,
        start_timeout: float = 60.0,
    ) -> None:
        self.size = size
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._context.set_forkserver_preload(["taskcast.runtime.worker"])
        # The lifeline: only this process holds the write end (os.pipe's fds are not inherited,
        # and the forkserver and the resource tracker get only the fds passed to them).
        lifeline_r, lifeline_w = os.pipe()
        self._lifeline_w: int | None = lifeline_w
        self._lifeline = Connection(lifeline_r, writable=False)
        self._setup = WorkerSetup(initializer, self._lifeline, cancel_grace, start_timeout)
        self._on_message = on_message
        self._on_slot_free = on_slot_free
        self._slots: list[Slot] = []
        self._waiters: collections.deque[asyncio.Future[Slot]] = collections.deque()
        self._replacing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._next_index = 0
        self._failed_starts = 0
        self._last_error: str | None = None

    def _new_slot(self) -> Slot:
        self._next_index += 1
        return Slot(
            self._next_index, self._context, self._on_message, self._setup, self._on_idle_death
        )

    async def start(self) -> None:
        """Start every worker; WorkerStartFailed (and none left running) if one cannot start."""
        slots = [self._new_slot() for _ in range(self.size)]
        outcomes = await asyncio.gather(*(slot.start() for slot in slots), return_exceptions=True)
        failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failed:
            for slot in slots:
                slot.dispose()
            self._close_lifeline()
            raise WorkerStartFailed(f"the process pool could not start: {failed[0]}")
        self._slots = slots

    def health(self) -> PoolHealth:
        return PoolHealth(
            size=self.size,
            alive=sum(1 for slot in self._slots if not slot.broken),
            busy=sum(1 for slot in self._slots if slot.busy),
            replacing=len(self._replacing),
            failed_starts=self._failed_starts,
            last_error=self._last_error,
        )

    @property
    def free(self) -> int:
        return sum(1 for slot in self._slots if not slot.busy and not slot.broken)

    def acquire(self) -> Slot | None:
        for slot in self._slots:
            if not slot.busy and not slot.broken:
                slot.busy = True
                return slot
        return None

    async def acquire_next(self) -> Slot:
        """A free slot now or the next one freed, ahead of the tasks still queued: for a task
        whose slot turned out to be dead (SlotBroken)."""
        slot = self.acquire()
        if slot is not None:
            return slot
        waiter: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())  # given to us just as we were cancelled
            raise

    def release(self, slot: Slot) -> None:
        slot.busy = False
        if slot.broken:
            self._start_replacing(slot)
        else:
            self._slot_freed()

    def _on_idle_death(self, slot: Slot) -> None:
        logger.warning("pool: idle worker %s of slot %s died", slot.pid, slot.index)
        self._start_replacing(slot)

    def _start_replacing(self, slot: Slot) -> None:
        if self._closed:
            return
        task = asyncio.get_running_loop().create_task(self._replace(slot))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    def _slot_freed(self) -> None:
        """A slot is free: the tasks waiting in `acquire_next` first, then the runner's queue."""
        while self._waiters:
            waiter = self._waiters[0]
            if waiter.done():  # cancelled
                self._waiters.popleft()
                continue
            slot = self.acquire()
            if slot is None:
                return
            self._waiters.popleft()
            waiter.set_result(slot)
        self._on_slot_free()

    async def _replace(self, broken: Slot) -> None:
        """Start a worker in place of `broken`, trying again after a growing delay until one
        starts or the pool closes."""
        broken.dispose()
        delay = RESTART_DELAY_FIRST
        while True:
            fresh = self._new_slot()
            try:
                await fresh.start()
            except WorkerStartFailed as exc:
                fresh.dispose()
                self._failed_starts += 1
                self._last_error = str(exc)
                logger.error(
                    "pool: could not start a worker to replace slot %s (%d failed starts in a "
                    "row): %s; trying again in %g s",
                    broken.index,
                    self._failed_starts,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_DELAY_MAX)
                continue
            except BaseException:  # cancelled by close(), or a bug: no worker left behind
                fresh.dispose()
                raise
            break
        if self._closed:
            fresh.dispose()
            return
        if self._failed_starts:
            logger.warning("pool: workers start again after %d failed starts", self._failed_starts)
        self._failed_starts, self._last_error = 0, None
        self._slots[self._slots.index(broken)] = fresh
        logger.info("pool: worker %s replaced by %s", broken.pid, fresh.pid)
        self._slot_freed()

    async def close(self) -> None:
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(WorkerDied("the pool closed before a worker was free"))
        replacing = list(self._replacing)
        for task in replacing:
            task.cancel()
        await asyncio.gather(*replacing, return_exceptions=True)  # each disposes its new worker
        slots, self._slots = self._slots, []
        for slot in slots:
            slot.dispose()
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(None, slot.executor.shutdown, True) for slot in slots)
        )
        self._close_lifeline()

    def _close_lifeline(self) -> None:
        """Any worker still about (one whose kill failed) sees its server gone and exits."""
        if self._lifeline_w is not None:
            os.close(self._lifeline_w)
            self._lifeline_w = None
        self._lifeline.close()

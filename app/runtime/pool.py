"""The process pool: single-worker slots (`slot.py`) that can be stopped and replaced one by one.

Killing the worker of one slot (to cancel or time out its task, or because it crashed) breaks only
that slot; the slot is replaced in the background and no other task notices. A task handed to a
slot whose worker is already gone (`SlotBroken`) takes the next free slot ahead of the queue.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
from collections.abc import Callable

from taskcast.runtime.pipe import Events, Output
from taskcast.runtime.slot import Slot, WorkerDied

logger = logging.getLogger(__name__)


class ProcessPool:
    """A fixed number of slots; a broken slot is replaced by a fresh one in the background."""

    def __init__(
        self,
        size: int,
        start_method: str,
        on_message: Callable[[Events | Output], None],
        on_slot_free: Callable[[], None],
        initializer: str | None = None,
    ) -> None:
        self.size = size
        self._initializer = initializer
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._context.set_forkserver_preload(["taskcast.runtime.worker"])
        self._on_message = on_message
        self._on_slot_free = on_slot_free
        self._slots: list[Slot] = []
        self._waiters: collections.deque[asyncio.Future[Slot]] = collections.deque()
        self._replacing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._next_index = 0

    def _new_slot(self) -> Slot:
        self._next_index += 1
        return Slot(
            self._next_index,
            self._context,
            self._on_message,
            self._initializer,
            self._on_idle_death,
        )

    async def start(self) -> None:
        slots = [self._new_slot() for _ in range(self.size)]
        await asyncio.gather(*(slot.start() for slot in slots))
        self._slots = slots

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
        broken.dispose()
        fresh = self._new_slot()
        try:
            await fresh.start()
        except Exception:
            logger.exception("pool: could not start a worker to replace slot %s", broken.index)
            fresh.dispose()
            return
        if self._closed:
            fresh.dispose()
            return
        self._slots[self._slots.index(broken)] = fresh
        logger.info("pool: worker %s replaced by %s", broken.pid, fresh.pid)
        self._slot_freed()

    async def close(self) -> None:
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(WorkerDied("the pool closed before a worker was free"))
        for task in list(self._replacing):
            task.cancel()
        slots, self._slots = self._slots, []
        for slot in slots:
            slot.dispose()
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(None, slot.executor.shutdown, True) for slot in slots)
        )

"""The process pool: single-worker executors ("slots") that can be stopped and replaced one by one.

Each slot is a `ProcessPoolExecutor(max_workers=1)` with its own event pipe, read on the event loop
with `add_reader`, so events from a process task reach the server as they happen. Killing the
worker of one slot (to cancel or time out its task, or because it crashed) breaks only that slot's
executor; the slot is replaced in the background and no other task notices. A worker that dies
while idle is noticed by the end of its pipe; a task handed to a slot whose worker is already gone
is not run there (`SlotBroken`) and takes the next free slot ahead of the queue.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import SynchronizedString
from typing import Any

from taskcast.runtime import worker
from taskcast.runtime.pipe import Decoder, Done, Events, Message, Output
from taskcast.spec import ProcessCall

logger = logging.getLogger(__name__)


class WorkerDied(Exception):
    """The worker process ended while running the task (crash, os._exit, killed)."""


class SlotBroken(Exception):
    """The slot's worker was already gone when a task was handed to it: the task did not start."""


def describe_exit(exitcode: int | None) -> str:
    """A reason a person understands: 'worker process died: signal 9 (SIGKILL)'."""
    if exitcode is None:
        return "worker process died"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        return f"worker process died: signal {-exitcode} ({name})"
    return f"worker process died: exit code {exitcode}"


class Slot:
    """One worker process: its executor, its event pipe, and whether a task holds it."""

    def __init__(
        self,
        index: int,
        context: Any,
        on_message: Callable[[Events | Output], None],
        initializer: str | None = None,
        on_idle_death: Callable[[Slot], None] = lambda slot: None,
    ) -> None:
        self.index = index
        self.busy = False
        self.broken = False
        self.task_id: str | None = None
        self.pid: int | None = None
        self._on_message = on_message
        self._on_idle_death = on_idle_death
        self._read_fd, write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        # A Connection is handed to the worker by multiprocessing itself (fd passing), raw fds are not.
        self._write_end: Connection | None = Connection(write_fd, readable=False)
        self._decoder = Decoder()
        self._done: asyncio.Future[None] | None = None
        self._eof = False
        self.cancel_target: SynchronizedString = context.Array("c", 64, lock=False)
        self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=context,
            initializer=worker.initialize,
            initargs=(self._write_end, self.cancel_target, initializer),
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.pid = await loop.run_in_executor(self.executor, worker.ready)
        finally:
            # Only the worker keeps the write end now, so its death shows here as end of file.
            if self._write_end is not None:
                self._write_end.close()
                self._write_end = None
        loop.add_reader(self._read_fd, self._read_available)

    def _read_available(self) -> None:
        while not self._eof:
            try:
                chunk = os.read(self._read_fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                self._eof = True
                asyncio.get_running_loop().remove_reader(self._read_fd)
                self._resolve_done()
                if not self.busy and not self.broken:
                    # No task holds the slot to find out through its executor, so tell the
                    # pool now; a busy slot is found out by the task it holds.
                    self.broken = True
                    self._on_idle_death(self)
                break
            self._dispatch(self._decoder.feed(chunk))
            if len(chunk) < 1 << 16:
                break

    def _dispatch(self, messages: list[Message]) -> None:
        for message in messages:
            if isinstance(message, Done):
                self._resolve_done()
                continue
            try:
                self._on_message(message)
            except Exception:
                logger.exception(
                    "pool: handling %s of task %s from worker %s failed",
                    type(message).__name__,
                    message.task_id,
                    self.pid,
                )

    def _resolve_done(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def _death_reason(self) -> str:
        """Why the worker died, read once the executor has reaped it.

        The executor's own thread also reads the dead worker's status; reading it before that
        thread is done can find the status already taken ('exit code 255').
        """
        # The executor keeps its processes privately; their exit code is the best reason there is.
        processes = list((getattr(self.executor, "_processes", None) or {}).values())
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)
        for process in processes:
            if process.exitcode is not None:
                return describe_exit(process.exitcode)
        return describe_exit(None)

    async def run(self, task_id: str, stream_id: str | None, call: ProcessCall) -> Any:
        """Run one task; all its events are dispatched before this returns or raises.

        `call` holds the task's function and arguments as `spec.process_call` pickled them; the
        executor carries these bytes to the worker as they are, without pickling them again.

        Raises SlotBroken, having run nothing, when the worker is known to be gone already.
        """
        loop = asyncio.get_running_loop()
        if not self._eof:
            self._read_available()  # a death the loop has not got round to reading yet
        if self._eof or self.broken:
            self.broken = True
            raise SlotBroken(f"worker {self.pid} of slot {self.index} is gone")
        self.task_id = task_id
        self._done = loop.create_future()
        try:
            try:
                future = loop.run_in_executor(self.executor, worker.run, task_id, stream_id, call)
            except BrokenProcessPool:
                self.broken = True  # the executor saw the death before the pipe's end was read
                raise SlotBroken(f"worker {self.pid} of slot {self.index} is gone") from None
            try:
                result = await future
            except BrokenProcessPool:
                self.broken = True
                self._read_available()  # what the worker wrote before it died is still in the pipe
                raise WorkerDied(await self._death_reason()) from None
            except Exception:
                await self._wait_done()
                raise
            await self._wait_done()
            return result
        finally:
            self.task_id = None
            self._done = None

    async def _wait_done(self) -> None:
        assert self._done is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._done), timeout=10)
        except TimeoutError:
            logger.error("pool: worker %s returned but its event stream did not end", self.pid)

    def interrupt(self, task_id: str) -> None:
        """Ask the worker to stop `task_id`: TaskCancelled is raised inside the task."""
        if self.pid is None or self.task_id != task_id:
            return
        self.cancel_target.value = task_id.encode()
        try:
            os.kill(self.pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        self.broken = True
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def dispose(self) -> None:
        """Kill the worker and free the pipe; the executor is shut down without waiting."""
        try:
            asyncio.get_running_loop().remove_reader(self._read_fd)
        except RuntimeError:
            pass
        self.kill()
        self.executor.shutdown(wait=False, cancel_futures=True)
        os.close(self._read_fd)
        if self._write_end is not None:
            self._write_end.close()
            self._write_end = None


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

"""One slot of the process pool: a single-worker executor, its event pipe read on the loop, and
the task it holds.

Each slot is a `ProcessPoolExecutor(max_workers=1)` with its own event pipe, read on the event loop
with `add_reader`, so events from a process task reach the server as they happen. Killing the
worker of one slot (to cancel or time out its task, or because it crashed) breaks only that slot's
executor. A worker that dies while idle is noticed by the end of its pipe; a task handed to a slot
whose worker is already gone is not run there (`SlotBroken`). A worker that cannot start (its
initializer fails, or it is not ready within `WorkerSetup.start_timeout`) is killed and reported
as `WorkerStartFailed`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
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


class WorkerStartFailed(Exception):
    """A new worker did not become ready: its initializer failed or hung, or it died at start."""


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What every worker of a pool is started with."""

    #: dotted path of the user's function each worker calls once at start
    initializer: str | None = None
    #: the read end of the server's lifeline (see `worker`); None: the worker does not watch
    lifeline: Connection | None = None
    #: seconds a worker whose server is gone gives its task to stop before it exits
    cancel_grace: float = 2.0
    #: seconds a new worker, its initializer included, may take to be ready
    start_timeout: float = 60.0


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
        setup: WorkerSetup | None = None,
        on_idle_death: Callable[[Slot], None] = lambda slot: None,
    ) -> None:
        self.index = index
        self.busy = False
        self.broken = False
        self.task_id: str | None = None
        self.pid: int | None = None
        self._setup = setup = setup or WorkerSetup()
        self._on_message = on_message
        self._on_idle_death = on_idle_death
        self._read_fd, write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        # A Connection is handed to the worker by multiprocessing itself (fd passing), raw fds are not.
        self._write_end: Connection | None = Connection(write_fd, readable=False)
        self._decoder = Decoder()
        self._done: asyncio.Future[None] | None = None
        self._eof = False
        self._disposed = False
        self.cancel_target: SynchronizedString = context.Array("c", 64, lock=False)
        self.executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=context,
            initializer=worker.initialize,
            initargs=(
                self._write_end,
                self.cancel_target,
                setup.initializer,
                setup.lifeline,
                setup.cancel_grace,
            ),
        )

    async def start(self) -> None:
        """Start the worker and wait until it is ready; WorkerStartFailed if it is not."""
        loop = asyncio.get_running_loop()
        timeout = self._setup.start_timeout
        try:
            ready = loop.run_in_executor(self.executor, worker.ready)
            self.pid = await asyncio.wait_for(ready, timeout)
        except TimeoutError:
            raise WorkerStartFailed(f"a new worker was not ready within {timeout:g} s") from None
        except BrokenProcessPool:
            reason = await self._death_reason()
            if reason == describe_exit(worker.INITIALIZER_FAILED_EXIT):
                reason = f"worker_initializer {self._setup.initializer} failed (see the log)"
            raise WorkerStartFailed(f"a new worker ended before it was ready: {reason}") from None
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
        processes = self._processes()
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

    def _processes(self) -> list[Any]:
        # The executor keeps its processes privately; they are the only handle on a worker that
        # has not said its pid yet, and their exit code is the best reason for a death there is.
        return list((getattr(self.executor, "_processes", None) or {}).values())

    def kill(self) -> None:
        self.broken = True
        pids = {self.pid} if self.pid is not None else {p.pid for p in self._processes()}
        for pid in pids:
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def dispose(self) -> None:
        """Kill the worker and free the pipe; the executor is shut down without waiting.
        A second call does nothing (the pool disposes a slot it is replacing, and at close)."""
        if self._disposed:
            return
        self._disposed = True
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

"""Running and stopping one run by its kind: a coroutine on the loop, a call in a thread, or a
call in a worker process; its timeout, and the task context its code sees.

Every run is an asyncio task, whatever its kind, so stopping one is cancelling that task: an
async task is cancelled where it awaits; a thread task is asked to stop (`is_cancelled()`) and
abandoned after the grace; a process task is interrupted in its worker (TaskCancelled raised
inside it) and its worker killed after the grace, which breaks only its own slot.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from taskcast.errors import TaskCancelled
from taskcast.publish import TaskContext, context_for
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.events import RunEvents
from taskcast.runtime.pool import ProcessPool
from taskcast.runtime.slot import Slot, SlotBroken, WorkerDied
from taskcast.runtime.threads import DaemonThreads
from taskcast.settings import Settings
from taskcast.spec import TaskSpec
from taskcast.store.rows import PickledArgs
from taskcast.tracebacks import error_text

logger = logging.getLogger(__name__)

#: how a run's attempt ended: (run, status, result, error), called on the loop
OnEnd = Callable[["Run", TaskStatus, Any, "str | None"], None]


def short_error(error: str | None, limit: int = 200) -> str | None:
    """The last line of a traceback (the exception itself), for the stream's stop frame."""
    if not error:
        return None
    lines = [line for line in error.strip().splitlines() if line.strip()]
    text = lines[-1].strip() if lines else error
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Run:
    """A task the runner holds until it ends: its spec, its latest record and how to stop it.

    A run `submit` makes has no record yet: its queued record is made from the spec the first
    time it is read (by `get`, or when the runner saves it a turn later), which keeps that work
    off the turn of a caller starting thousands of tasks."""

    __slots__ = (
        "_record",
        "announced",
        "cancel_event",
        "done",
        "enqueued",
        "entered",
        "events",
        "exception",
        "handle",
        "id",
        "order",
        "pickled",
        "slot",
        "spec",
        "stop_reason",
        "timer",
    )

    def __init__(
        self,
        spec: TaskSpec,
        record: TaskRecord | str,
        order: int,
        done: asyncio.Future[TaskRecord],
        events: RunEvents,
        enqueued: datetime | None = None,
    ) -> None:
        """`record`: the run's record, or only its task id for a new run queued at `enqueued`."""
        self.spec = spec
        if isinstance(record, str):
            self.id = record
            self._record: TaskRecord | None = None
            self.enqueued = enqueued
        else:
            self.id = record.id
            self._record = record
            self.enqueued = record.enqueued
        self.order = order
        self.done = done
        self.events = events
        self.handle: asyncio.Task[None] | None = None
        #: the attempt's coroutine has taken its first step (a run stopped before it has not)
        self.entered = False
        self.timer: asyncio.TimerHandle | None = None
        self.stop_reason: TaskStatus | None = None
        #: what a thread task's `is_cancelled()` reads; an async task is cancelled where it
        #: awaits and needs none (one less object per run where runs are many)
        self.cancel_event = threading.Event() if spec.kind != "async" else None
        self.exception: BaseException | None = None
        #: saved, announced and put in the queue (the runner does that a turn after `submit`)
        self.announced = False
        #: the process slot taken for it when it was picked, until its attempt starts
        self.slot: Slot | None = None
        #: its args and kwargs pickled once for all its saves: by the check for a process
        #: task, else by the store at its first save
        self.pickled: PickledArgs | None = spec.call.arguments if spec.call is not None else None

    @property
    def record(self) -> TaskRecord:
        """The run's latest record (made from the spec at the first read of a new run's)."""
        record = self._record
        if record is None:
            record = self._record = self.spec.new_record(
                self.id, status=TaskStatus.QUEUED, enqueued=self.enqueued
            )
        return record

    @record.setter
    def record(self, record: TaskRecord) -> None:
        self._record = record


class Execution:
    """Starts an attempt of a run in the way its kind needs, and stops it; see the module."""

    def __init__(
        self,
        settings: Settings,
        pool: ProcessPool,
        on_thread_free: Callable[[], None],
        closing: Callable[[], bool],
        on_end: OnEnd,
    ) -> None:
        self._settings = settings
        #: where every attempt reports its end
        self._on_end = on_end
        self._pool = pool
        self._on_thread_free = on_thread_free
        self._closing = closing
        self._threads = DaemonThreads()
        #: thread tasks running now (or abandoned and not yet returned)
        self.threads_busy = 0

    def start(self, run: Run) -> None:
        """Start an attempt of `run` now; its end is reported to `on_end`."""
        loop = asyncio.get_running_loop()
        if run.spec.timeout is not None:
            run.timer = loop.call_later(run.spec.timeout, self.stop, run, TaskStatus.TIMED_OUT)
        context = context_for(self._task_context(run, loop))
        run.entered = False
        run.handle = loop.create_task(
            self._execute(run, context),
            name=f"taskcast {run.spec.func_path} {run.id[:8]}",
            context=context,
        )

    def stop(self, run: Run, reason: TaskStatus) -> None:
        """Stop the running attempt of `run`; it ends as `reason`."""
        handle = run.handle
        if handle is not None and run.stop_reason is None:
            run.stop_reason = reason
            if not run.entered:
                # Cancelled before its first step, its coroutine never runs: the end is
                # reported from the task's done callback instead. Only such runs get one, as a
                # done callback costs a turn's call for every run that ends.
                handle.add_done_callback(lambda done: self._cancelled_unstarted(run, done))
            handle.cancel()

    def _task_context(self, run: Run, loop: asyncio.AbstractEventLoop) -> TaskContext:
        events = run.events
        if run.spec.kind == "async":
            return TaskContext(run.id, run.spec.stream_id, events.emit)

        def emit_threadsafe(data_json: str) -> None:
            loop.call_soon_threadsafe(events.emit, data_json)

        assert run.cancel_event is not None, "a thread or process run has its cancel event"
        return TaskContext(run.id, run.spec.stream_id, emit_threadsafe, run.cancel_event.is_set)

    async def _execute(self, run: Run, context: contextvars.Context) -> None:
        run.entered = True
        status, result, error = TaskStatus.SUCCESS, None, None
        spec = run.spec
        try:
            if spec.kind == "async":
                # Awaited here, not in `_call`: every coroutine between the asyncio task and
                # the function is passed through on each of its steps.
                result = await spec.func(*spec.args, **spec.kwargs)
            else:
                result = await self._call(run, context)
        except (asyncio.CancelledError, TaskCancelled) as exc:
            if isinstance(exc, asyncio.CancelledError) and (task := asyncio.current_task()):
                task.uncancel()
            status = run.stop_reason or TaskStatus.CANCELLED
            error = self._stop_text(run, status)
        except WorkerDied as exc:
            status = run.stop_reason or TaskStatus.FAILED
            error = self._stop_text(run, status) if run.stop_reason else str(exc)
        except BaseException as exc:
            run.exception = exc
            status = TaskStatus.FAILED
            error = error_text(exc)
            logger.warning(
                "task %s (%s) failed: %s", run.id, run.spec.func_path, short_error(error)
            )
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        if run.slot is not None:  # stopped before its coroutine took the slot
            self._pool.release(run.slot)
            run.slot = None
        self._on_end(run, status, result, error)

    def _cancelled_unstarted(self, run: Run, handle: asyncio.Task[None]) -> None:
        """A run stopped before its asyncio task took its first step never entered `_execute`
        (starts and stops can fall in the same turn of the loop): it ends here instead."""
        if not handle.cancelled():
            return  # `_execute` ran and reported the end
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        if run.slot is not None:
            self._pool.release(run.slot)
            run.slot = None
        status = run.stop_reason or TaskStatus.CANCELLED
        self._on_end(run, status, None, self._stop_text(run, status))

    def _stop_text(self, run: Run, status: TaskStatus) -> str:
        if status is TaskStatus.TIMED_OUT:
            return f"timed out after {run.spec.timeout:g} s"
        return "cancelled" if not self._closing() else "cancelled: the server shut down"

    async def _call(self, run: Run, context: contextvars.Context) -> Any:
        """A thread or process task's work, awaited until it ends or is stopped."""
        spec = run.spec
        if spec.kind == "thread":
            self.threads_busy += 1
            future = asyncio.get_running_loop().run_in_executor(
                # A copy: the task's own context is entered by the asyncio task awaiting this.
                self._threads,
                functools.partial(context.copy().run, spec.func, *spec.args, **spec.kwargs),
            )
            future.add_done_callback(self._thread_released)
            return await self._until_stopped(run, future, None)
        slot, run.slot = run.slot, None
        assert slot is not None, "dispatched a process task without a free slot"
        call = spec.call  # pickled once, when it was checked; sent as it is
        assert call is not None, "a process task's spec always carries its call"
        while True:
            try:
                work = asyncio.ensure_future(slot.run(run.id, spec.stream_id, call))
                return await self._until_stopped(run, work, slot)
            except SlotBroken as exc:
                # Its worker died while idle, so the task never started: it is not a failure.
                logger.warning("task %s: %s; running it on another worker", run.id, exc)
            finally:
                self._pool.release(slot)
            slot = await self._pool.acquire_next()

    def _thread_released(self, future: asyncio.Future[Any]) -> None:
        self.threads_busy -= 1
        if not future.cancelled():
            future.exception()  # retrieved, so an abandoned thread's error is not reported twice
        self._on_thread_free()

    async def _until_stopped(self, run: Run, work: asyncio.Future[Any], slot: Slot | None) -> Any:
        """Await thread or process work; when stopped, interrupt it, then kill it after a grace."""
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if (task := asyncio.current_task()) is not None:
                task.uncancel()
        if slot is not None:
            slot.interrupt(run.id)
        else:
            assert run.cancel_event is not None
            run.cancel_event.set()
        grace = self._settings.cancel_grace
        await asyncio.wait({work}, timeout=grace)
        if not work.done():
            if slot is not None:
                slot.kill()
                await asyncio.wait({work}, timeout=10)
            else:
                logger.warning(
                    "thread task %s did not stop within %s s; its result will be ignored",
                    run.id,
                    grace,
                )
        if work.done() and not work.cancelled():
            work.exception()
        raise TaskCancelled(run.id)

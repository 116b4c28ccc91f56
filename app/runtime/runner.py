"""The runner: queues checked task calls, runs them by kind, and records how each one ends.

It owns every task it started (async tasks on the loop, thread tasks, process-pool slots), enforces
the concurrency limit with one FIFO queue per kind, stops tasks on cancel or timeout, opens and
closes their streams on the hub, and writes each state change to the store. Plain asyncio: it
never imports aiohttp.web.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import functools
import inspect
import itertools
import logging
import threading
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from taskcast.errors import (
    NoRunnerError,
    RunnerClosedError,
    StoreError,
    StreamBusyError,
    TaskCancelled,
    UnknownTaskError,
)
from taskcast.hub.hub import Hub, Subscription
from taskcast.publish import TaskContext, _current
from taskcast.records import FINAL_STATUSES, TaskRecord, TaskStatus
from taskcast.runtime.pipe import Events, Message, Output
from taskcast.runtime.pool import ProcessPool, Slot, SlotBroken, WorkerDied
from taskcast.runtime.threads import DaemonThreads
from taskcast.settings import Settings
from taskcast.spec import Kind, TaskSpec
from taskcast.store.store import Store

logger = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024
#: seconds a task's events may wait to be handed to the store together
EVENT_SAVE_DELAY = 0.02
#: ... or until this many are waiting
EVENT_SAVE_BATCH = 1000


def utcnow() -> datetime:
    return datetime.now(UTC)


def short_error(error: str | None, limit: int = 200) -> str | None:
    """The last line of a traceback (the exception itself), for the stream's stop frame."""
    if not error:
        return None
    lines = [line for line in error.strip().splitlines() if line.strip()]
    text = lines[-1].strip() if lines else error
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Run:
    """A task the runner holds until it ends: its spec, its latest record and how to stop it."""

    __slots__ = (
        "cancel_event",
        "done",
        "exception",
        "handle",
        "order",
        "output",
        "record",
        "save_timer",
        "slot",
        "spec",
        "stop_reason",
        "timer",
        "unsaved",
        "unsaved_from",
    )

    def __init__(
        self, spec: TaskSpec, record: TaskRecord, order: int, done: asyncio.Future[TaskRecord]
    ) -> None:
        self.spec = spec
        self.record = record
        self.order = order
        self.done = done
        self.handle: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.stop_reason: TaskStatus | None = None
        self.cancel_event = threading.Event()
        self.exception: BaseException | None = None
        self.output = ""
        self.slot: Slot | None = None
        # Events published but not yet handed to the store (from seq unsaved_from), and the
        # timer that hands them over.
        self.unsaved: list[str] = []
        self.unsaved_from = 1
        self.save_timer: asyncio.TimerHandle | None = None

    @property
    def id(self) -> str:
        return self.record.id


class Runner:
    """Runs tasks of every kind inside this process; see the module docstring."""

    def __init__(self, settings: Settings, hub: Hub, store: Store) -> None:
        self.settings = settings
        self.hub = hub
        self.store = store
        self._queues: dict[Kind, collections.deque[_Run]] = {
            "async": collections.deque(),
            "thread": collections.deque(),
            "process": collections.deque(),
        }
        self._active: dict[str, _Run] = {}
        self._streams: dict[str, str] = {}
        self._running = 0
        self._threads_busy = 0
        self._order = itertools.count()
        self._closing = False
        self._background: set[asyncio.Task[Any]] = set()
        self._listeners: list[Callable[[TaskRecord], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._threads = DaemonThreads()
        self._closing_task: asyncio.Task[None] | None = None
        self._pool = ProcessPool(
            settings.process_workers,
            settings.start_method,
            self._on_worker_message,
            self._dispatch,
            settings.worker_initializer,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Runner:
        """A runner with its own store and hub, each sized by `settings` (nothing opened yet)."""
        store = Store(
            settings.database,
            save_limit=settings.save_limit,
            max_value_bytes=settings.max_result_bytes,
        )
        hub = Hub(
            max_events=settings.history_max_events,
            max_bytes=settings.history_max_bytes,
            keep_head=settings.history_keep_head,
            kept_streams=settings.kept_streams,
            max_pending=settings.subscriber_max_pending,
            write_window=settings.write_window,
        )
        return cls(settings, hub, store)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await self._pool.start()

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise NoRunnerError("the runner has not been started")
        return self._loop

    def on_loop_thread(self) -> bool:
        return threading.get_ident() == self._loop_thread

    def begin_close(self, grace: float | None = None) -> None:
        """Refuse new tasks from now on and start closing; `close()` then waits for the end.

        Called when the server starts shutting down, so the tasks' grace runs while the web
        server is still draining its connections, not after.
        """
        if self._closing_task is None:
            self._closing = True
            self._closing_task = self.loop.create_task(self._close(grace))

    async def close(self, grace: float | None = None) -> None:
        """Refuse new tasks, give running ones `grace` seconds, then cancel them and stop workers."""
        self.begin_close(grace)
        assert self._closing_task is not None
        await asyncio.shield(self._closing_task)

    async def _close(self, grace: float | None) -> None:
        self._closing = True
        for queue in self._queues.values():
            while queue:
                run = queue.popleft()
                self._finish(
                    run,
                    TaskStatus.CANCELLED,
                    error="cancelled: the server shut down before the task started",
                )
        running = [run.done for run in self._active.values()]
        if running and grace:
            await asyncio.wait(running, timeout=grace)
        for run in list(self._active.values()):
            self._stop(run, TaskStatus.CANCELLED)
        remaining = [run.done for run in self._active.values()]
        if remaining:
            await asyncio.wait(remaining, timeout=self.settings.cancel_grace + 5)
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        await self._pool.close()

    # -- submitting --------------------------------------------------------------------------------

    def submit(self, spec: TaskSpec) -> str:
        """Queue a checked task call and return its id at once (loop thread only)."""
        if self._closing:
            raise RunnerClosedError("the server is shutting down and accepts no new tasks")
        if spec.stream_id is not None and spec.stream_id in self._streams:
            raise StreamBusyError(spec.stream_id, self._streams[spec.stream_id])
        task_id = uuid.uuid4().hex
        record = spec.new_record(task_id, status=TaskStatus.QUEUED, enqueued=utcnow())
        run = _Run(spec, record, next(self._order), self.loop.create_future())
        self._save(run)
        self._active[task_id] = run
        if spec.stream_id is not None:
            self._streams[spec.stream_id] = task_id
        self._queues[spec.kind].append(run)
        self._dispatch()
        return task_id

    async def run_and_wait(self, spec: TaskSpec) -> TaskRecord:
        """Submit, wait for the end, and re-raise the task's exception (`sync=True`)."""
        task_id = self.submit(spec)
        run = self._active.get(task_id)
        record = await asyncio.shield(run.done) if run is not None else self.get(task_id)
        assert record is not None
        if run is not None and run.exception is not None:
            raise run.exception
        if record.status is not TaskStatus.SUCCESS and record.status is not TaskStatus.FAILED:
            raise TaskCancelled(f"task {task_id} ended as {record.status.value}")
        if record.status is TaskStatus.FAILED:
            raise RuntimeError(f"task {task_id} failed: {short_error(record.error)}")
        return record

    # -- reading -----------------------------------------------------------------------------------

    def get(self, id_or_name: str) -> TaskRecord | None:
        run = self._active.get(id_or_name)
        if run is not None:
            return run.record
        return self.store.get_task(id_or_name)

    def latest_run(self, stream_id: str) -> TaskRecord | None:
        """The newest run of a stream: the queued or running one, else the newest stored."""
        task_id = self._streams.get(stream_id)
        if task_id is not None:
            return self._active[task_id].record
        return self.store.latest_run(stream_id)

    async def wait(self, task_id: str, timeout: float | None = None) -> TaskRecord:
        """The record once the task has finished; TimeoutError if it has not within `timeout`."""
        run = self._active.get(task_id)
        if run is not None:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(run.done)
        record = self.store.get_task(task_id)
        if record is None:
            raise UnknownTaskError(f"no task with id or name {task_id!r}")
        return record

    @property
    def queue_size(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    @property
    def running_count(self) -> int:
        return self._running

    def active_records(self) -> list[TaskRecord]:
        return [run.record for run in self._active.values()]

    async def wait_any(self, group: str) -> bool:
        """Wait until one unfinished task of `group` ends; False at once if none is unfinished."""
        pending = [run.done for run in self._active.values() if run.spec.group == group]
        if not pending:
            return False
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        return True

    async def subscribe(self, stream_id: str, after: int = 0) -> Subscription:
        """Subscribe to a stream, bringing a finished run back from the store if needed."""
        if stream_id not in self.hub:
            record = self.store.latest_run(stream_id)
            if record is not None and record.status.is_final:
                events = await self.loop.run_in_executor(None, self.store.events, record.id)
                self.hub.restore(
                    stream_id, record.id, events, record.status.value, short_error(record.error)
                )
        return self.hub.subscribe(stream_id, after)

    # -- stopping ----------------------------------------------------------------------------------

    def cancel(self, task_id: str) -> bool:
        """Cancel a queued or running task; False if it has already finished."""
        run = self._active.get(task_id)
        if run is None:
            if self.store.get_task(task_id) is None:
                raise UnknownTaskError(f"no task with id {task_id!r}")
            return False
        self._stop(run, TaskStatus.CANCELLED)
        return True

    def _stop(self, run: _Run, reason: TaskStatus) -> None:
        if run.record.status is TaskStatus.QUEUED:
            queue = self._queues[run.spec.kind]
            if run in queue:
                queue.remove(run)
            self._finish(run, reason, error=f"{reason.value} before it started")
        elif run.handle is not None and run.stop_reason is None:
            run.stop_reason = reason
            run.handle.cancel()

    # -- running -----------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while self._running < self.settings.max_concurrency:
            run = self._next_ready()
            if run is None:
                return
            self._start(run)

    def _next_ready(self) -> _Run | None:
        best: _Run | None = None
        for kind, queue in self._queues.items():
            if not queue:
                continue
            if kind == "process" and self._pool.free == 0:
                continue
            if kind == "thread" and self._threads_busy >= self.settings.thread_workers:
                continue
            if best is None or queue[0].order < best.order:
                best = queue[0]
        if best is not None:
            self._queues[best.spec.kind].popleft()
            if best.spec.kind == "process":
                # Taken now, not when the task's coroutine first runs, so the next pick sees it.
                best.slot = self._pool.acquire()
        return best

    def _start(self, run: _Run) -> None:
        first = run.record.attempt_count == 0
        run.record = run.record.replace(
            status=TaskStatus.RUNNING, started=utcnow(), attempt_count=run.record.attempt_count + 1
        )
        self._save(run)
        if first and run.spec.stream_id is not None:
            self.hub.open(run.spec.stream_id, run.id)
        self._running += 1
        if run.spec.timeout is not None:
            run.timer = self.loop.call_later(
                run.spec.timeout, self._stop, run, TaskStatus.TIMED_OUT
            )
        context = contextvars.copy_context()
        context.run(_current.set, self._task_context(run))
        run.handle = self.loop.create_task(
            self._execute(run, context),
            name=f"taskcast {run.spec.func_path} {run.id[:8]}",
            context=context,
        )

    def _task_context(self, run: _Run) -> TaskContext:
        if run.spec.kind == "async":
            return TaskContext(run.id, run.spec.stream_id, functools.partial(self._emit, run))
        loop = self.loop

        def emit_threadsafe(data_json: str) -> None:
            loop.call_soon_threadsafe(self._emit, run, data_json)

        return TaskContext(run.id, run.spec.stream_id, emit_threadsafe, run.cancel_event.is_set)

    async def _execute(self, run: _Run, context: contextvars.Context) -> None:
        status, result, error = TaskStatus.SUCCESS, None, None
        try:
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
            error = "".join(traceback.format_exception(exc))
            logger.warning(
                "task %s (%s) failed: %s", run.id, run.spec.func_path, short_error(error)
            )
        if run.slot is not None:  # stopped before its coroutine took the slot
            self._pool.release(run.slot)
            run.slot = None
        self._finish(run, status, result, error)

    def _stop_text(self, run: _Run, status: TaskStatus) -> str:
        if status is TaskStatus.TIMED_OUT:
            return f"timed out after {run.spec.timeout:g} s"
        return "cancelled" if not self._closing else "cancelled: the server shut down"

    async def _call(self, run: _Run, context: contextvars.Context) -> Any:
        spec = run.spec
        if spec.kind == "async":
            return await spec.func(*spec.args, **spec.kwargs)
        if spec.kind == "thread":
            self._threads_busy += 1
            future = self.loop.run_in_executor(
                # A copy: the task's own context is entered by the asyncio task awaiting this.
                self._threads,
                functools.partial(context.copy().run, spec.func, *spec.args, **spec.kwargs),
            )
            future.add_done_callback(self._thread_released)
            return await self._until_stopped(run, future, None)
        slot, run.slot = run.slot, None
        assert slot is not None, "dispatched a process task without a free slot"
        while True:
            try:
                work = asyncio.ensure_future(slot.run(run.id, spec.stream_id, spec.payload or b""))
                return await self._until_stopped(run, work, slot)
            except SlotBroken as exc:
                # Its worker died while idle, so the task never started: it is not a failure.
                logger.warning("task %s: %s; running it on another worker", run.id, exc)
            finally:
                self._pool.release(slot)
            slot = await self._pool.acquire_next()

    def _thread_released(self, future: asyncio.Future[Any]) -> None:
        self._threads_busy -= 1
        if not future.cancelled():
            future.exception()  # retrieved, so an abandoned thread's error is not reported twice
        self._dispatch()

    async def _until_stopped(self, run: _Run, work: asyncio.Future[Any], slot: Slot | None) -> Any:
        """Await thread or process work; when stopped, interrupt it, then kill it after a grace."""
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if (task := asyncio.current_task()) is not None:
                task.uncancel()
        if slot is not None:
            slot.interrupt(run.id)
        else:
            run.cancel_event.set()
        await asyncio.wait({work}, timeout=self.settings.cancel_grace)
        if not work.done():
            if slot is not None:
                slot.kill()
                await asyncio.wait({work}, timeout=10)
            else:
                logger.warning(
                    "thread task %s did not stop within %s s; its result will be ignored",
                    run.id,
                    self.settings.cancel_grace,
                )
        if work.done() and not work.cancelled():
            work.exception()
        raise TaskCancelled(run.id)

    # -- events from tasks -------------------------------------------------------------------------

    def _emit(self, run: _Run, data_json: str) -> None:
        stream_id = run.spec.stream_id
        if stream_id is None or run.record.status in FINAL_STATUSES:  # every event passes here
            return
        event = self.hub.publish(stream_id, data_json)
        if run.spec.save:
            self._keep_for_store(run, event.seq, [data_json])

    def _emit_many(self, run: _Run, events: list[str]) -> None:
        stream_id = run.spec.stream_id
        if stream_id is None or run.record.status in FINAL_STATUSES:
            return
        first_seq = self.hub.publish_many(stream_id, events)
        if run.spec.save:
            self._keep_for_store(run, first_seq, events)

    def _keep_for_store(self, run: _Run, first_seq: int, events: list[str]) -> None:
        # Handed to the store a few at a time: a call to it per event would cost the loop more
        # than the rest of the event's way to its readers.
        if not run.unsaved:
            run.unsaved_from = first_seq
            if run.save_timer is None:
                run.save_timer = self.loop.call_later(EVENT_SAVE_DELAY, self._save_events, run)
        run.unsaved += events
        if len(run.unsaved) >= EVENT_SAVE_BATCH:  # a task that sends without yielding
            self._save_events(run)

    def _save_events(self, run: _Run) -> None:
        """Hand the run's events kept so far to the store."""
        if run.save_timer is not None:
            run.save_timer.cancel()
            run.save_timer = None
        if not run.unsaved:
            return
        events, run.unsaved = run.unsaved, []
        try:
            self.store.append_events(run.id, run.unsaved_from, events)
        except StoreError as exc:
            logger.error("task %s: %d events were not stored: %s", run.id, len(events), exc)

    def _on_worker_message(self, message: Message) -> None:
        run = self._active.get(message.task_id)
        if run is None:
            return
        if isinstance(message, Events):  # a burst from the worker, in order
            self._emit_many(run, message.events)
        elif isinstance(message, Output):
            logger.info(
                "task %s (%s) printed: %s",
                message.task_id[:8],
                run.spec.func_path,
                message.text.rstrip(),
            )
            run.output = (run.output + message.text)[-OUTPUT_LIMIT:]

    # -- the end -----------------------------------------------------------------------------------

    def _finish(
        self, run: _Run, status: TaskStatus, result: Any = None, error: str | None = None
    ) -> None:
        was_running = run.record.status is TaskStatus.RUNNING
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        if was_running:
            self._running -= 1
        if (
            status is TaskStatus.FAILED
            and run.record.attempt_count < run.spec.max_attempts
            and not self._closing
        ):
            self._retry_later(run, error)
            return
        record = run.record.replace(
            status=status,
            stopped=utcnow(),
            error=error,
            result=result if status is TaskStatus.SUCCESS else None,
            output=run.output,
        )
        self._save_events(run)  # before the final record, which ends the run's events
        run.record = record
        try:
            self._save(run)
        except StoreError as exc:
            logger.error("task %s: %s", run.id, exc)
            run.record = record = record.replace(
                status=TaskStatus.FAILED,
                result=None,
                error=f"the result could not be stored: {exc}",
            )
            self._save(run)
        stream_id = run.spec.stream_id
        if stream_id is not None:
            opened = self.hub.get(stream_id)
            if opened is None or opened.run_id != run.id:
                # Ended before it started (cancelled while queued): readers waiting for this
                # run still get start and stop.
                self.hub.open(stream_id, run.id)
            if self.hub.close(stream_id, record.status.value, short_error(record.error)):
                self._trim_stored_events(run, stream_id)
            if self._streams.get(stream_id) == run.id:
                del self._streams[stream_id]
        self._active.pop(run.id, None)
        if not run.done.done():
            run.done.set_result(record)
        if run.spec.hook is not None:
            self._call_hook(run.spec.hook, record)
        self._dispatch()

    def _retry_later(self, run: _Run, error: str | None) -> None:
        run.record = run.record.replace(status=TaskStatus.QUEUED, error=error)
        self._save(run)
        logger.info(
            "task %s failed attempt %d of %d; retrying in %g s",
            run.id,
            run.record.attempt_count,
            run.spec.max_attempts,
            run.spec.retry_delay,
        )

        def requeue() -> None:
            if run.id in self._active and run.record.status is TaskStatus.QUEUED:
                self._queues[run.spec.kind].append(run)
                self._dispatch()

        self.loop.call_later(run.spec.retry_delay, requeue)
        self._dispatch()

    def _trim_stored_events(self, run: _Run, stream_id: str) -> None:
        stream = self.hub.get(stream_id)
        if stream is not None and stream.dropped and run.spec.save:
            self.store.trim_events(run.id, len(stream.head), len(stream.tail))

    def _save(self, run: _Run) -> None:
        """Every change of a task's record passes here: to the store, then to the listeners."""
        if run.spec.save:
            self.store.save_task(run.record)
        for listener in self._listeners:
            try:
                listener(run.record)
            except Exception:
                logger.exception("a task listener failed on %r", run.record)

    def add_listener(self, listener: Callable[[TaskRecord], None]) -> None:
        """Call `listener(record)` on the loop after each change of any task's record."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[TaskRecord], None]) -> None:
        self._listeners.remove(listener)

    def _call_hook(self, hook: Any, record: TaskRecord) -> None:
        async def call() -> None:
            try:
                if inspect.iscoroutinefunction(hook):
                    await hook(record)
                else:
                    await self.loop.run_in_executor(None, hook, record)
            except Exception:
                logger.exception("hook %r of task %s failed", hook, record.id)

        task = self.loop.create_task(call())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


# -- the process's default runner ----------------------------------------------------------------

_default_runner: Runner | None = None


def default_runner() -> Runner:
    """The runner of the app running in this process (installed at startup, removed at cleanup)."""
    if _default_runner is None:
        raise NoRunnerError(
            "no Taskcast server is running in this process: start one with `python run.py` or "
            "`web.run_app(app.create_app())`, or pass sync=True to run the task here and now"
        )
    return _default_runner


def install_default_runner(runner: Runner | None) -> None:
    global _default_runner
    _default_runner = runner

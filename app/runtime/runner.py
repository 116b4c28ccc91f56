"""The runner: queues checked task calls, starts them within the limits, and records how each
one ends.

It owns every task it started until it ends: each run's record from queued to its end (start,
retries, cancel, the final record), and waiting for an end. Which run may start next is the
queue's (`queue`); where each change of a record goes, and the hooks, the notifier's (`notify`);
how a run executes and stops, `execution`'s; where its events go, `events`'. Plain asyncio: it
never imports aiohttp.web.

Work in slices. `submit` does only what its caller must see at once: the checks
(`StreamBusyError`, closing), the id and the queued record, which `get`/`get_task` return from
then on. Saving that record, telling the listeners, putting the run in the queue and starting
it happen in later turns of the loop, as do the ends of runs (the final record saved and
announced, the stream's stop, the hook). Each turn of that work stops after `SLICE_SECONDS` and
goes on in the next turn, so 10,000 tasks started, or ending, in one turn of the loop never
hold the loop for long: everything else on the loop (pages, websockets, the health check) gets
its turn in between. The order is kept: each run's records are saved and announced in the order
they change, runs are queued in the order they were submitted, and a run's queued record is
handed to the store before the run starts.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskcast.errors import (
    NoRunnerError,
    RunnerClosedError,
    StoreError,
    StreamBusyError,
    TaskCancelled,
    UnknownTaskError,
)
from taskcast.hub.hub import Hub, Sink, Subscription, hub_options
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.events import RunEvents
from taskcast.runtime.execution import Execution, Run, short_error
from taskcast.runtime.notify import Notifier
from taskcast.runtime.pipe import Events, Output
from taskcast.runtime.pool import PoolHealth, ProcessPool
from taskcast.runtime.queue import KindLoad, RunQueue
from taskcast.settings import Settings
from taskcast.spec import TaskSpec
from taskcast.store.store import Store

if TYPE_CHECKING:
    from taskcast.cluster.tasks import TaskPlane

__all__ = ["Runner"]

logger = logging.getLogger(__name__)

#: seconds of deferred work (records, announcements, starts, ends) done in one turn of the loop;
#: small, because each start and end makes two to three times its own cost of work for the next
#: turns (the `start` or `stop` frame, the subscriber's wake-up), see docs/operations.md
SLICE_SECONDS = 0.00025
#: the same on the Redis engine, where each turn also carries the pipelines of the task plane
#: (claims, record changes, the changes of other nodes): their cost is per turn, and slices as
#: small as the memory engine's cut the tasks a cluster runs a second by half or more
CLUSTER_SLICE_SECONDS = 0.004
#: on the memory engine, a turn of the loop this long or longer, while ended attempts were left
#: waiting, makes the next slice finish at most `ENDS_WHEN_BUSY` of them: each end's follow-up
#: (its `stop` frame, its close handshake) costs several times the end itself in the turns
#: after, and when thousands end together those turns would otherwise keep the live streams'
#: events and the health check waiting (docs/operations.md)
BUSY_TURN_SECONDS = 0.001
ENDS_WHEN_BUSY = 1

#: how an attempt ended, waiting for its turn to be recorded: (run, status, result, error)
_Ending = tuple[Run, TaskStatus, Any, "str | None"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _TaskIds:
    """uuid4 ids (32 hex digits) from random bytes fetched 4 KiB at a time.

    `uuid.uuid4()` reads 16 bytes with `os.urandom` per id, and that call lets go of the GIL: with
    the store's writer thread busy (as when thousands of tasks start), taking it back can cost
    the loop far more than the read itself. One read serves 256 ids here; they are as random."""

    __slots__ = ("_at", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(4096), 0
        self._at = at + 16
        value = int.from_bytes(self._pool[at : at + 16])
        # The version (4) and variant bits of RFC 4122, as uuid.uuid4() sets them.
        value = (value & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
        return f"{value:032x}"


class Runner:
    """Runs tasks of every kind inside this process; see the module docstring."""

    def __init__(self, settings: Settings, hub: Hub, store: Store) -> None:
        self.settings = settings
        self.hub = hub
        self.store = store
        self._active: dict[str, Run] = {}
        self._streams: dict[str, str] = {}
        self._order = itertools.count()
        self._closing = False
        self._notifier = Notifier(store)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closing_task: asyncio.Task[None] | None = None
        #: runs submitted and not yet announced and queued; attempts ended and not yet recorded
        self._intake: collections.deque[Run] = collections.deque()
        self._ending: collections.deque[_Ending] = collections.deque()
        self._turn_due = False
        #: when the last slice left ended attempts waiting (None: it finished them all)
        self._ends_left_at: float | None = None
        self._ids = _TaskIds()
        #: the Redis engine's task plane (`taskcast.cluster.tasks`); None on the memory engine
        self.cluster: TaskPlane | None = None
        self._pool = ProcessPool(
            settings.process_workers,
            settings.start_method,
            self._on_worker_message,
            self._kick,
            settings.worker_initializer,
            cancel_grace=settings.cancel_grace,
            start_timeout=settings.worker_start_timeout,
        )
        self._execution = Execution(settings, self._pool, self._kick, lambda: self._closing)
        self._queue = RunQueue(
            settings.max_async_tasks,
            settings.thread_workers,
            self._pool,
            lambda: self._execution.threads_busy,
            self._kick,
            settings.max_concurrency,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Runner:
        """A runner with its own store and hub, each sized by `settings` (nothing opened yet)."""
        store = Store(
            settings.database,
            save_limit=settings.save_limit,
            max_value_bytes=settings.max_result_bytes,
            run_bound=(
                settings.history_keep_head,
                settings.history_max_events,
                settings.history_max_bytes,
            ),
        )
        hub = Hub(**hub_options(settings))
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
        unqueued = [run for run in self._intake if run.id in self._active]
        self._intake.clear()
        for run in [*unqueued, *self._queue.drain()]:
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
        await self._notifier.wait_hooks(5)
        await self._pool.close()

    # -- submitting --------------------------------------------------------------------------------

    def submit(self, spec: TaskSpec) -> str:
        """Queue a checked task call and return its id at once (loop thread only).

        Its queued record is what `get` returns from now on; it is saved, announced and put
        in the queue in a later turn of the loop (see the module docstring)."""
        if self._closing:
            raise RunnerClosedError("the server is shutting down and accepts no new tasks")
        if self.cluster is not None:
            return self.cluster.submit(spec)
        if spec.stream_id is not None and spec.stream_id in self._streams:
            raise StreamBusyError(spec.stream_id, self._streams[spec.stream_id])
        task_id = self._ids.next()
        self.adopt(spec, spec.new_record(task_id, status=TaskStatus.QUEUED, enqueued=utcnow()))
        return task_id

    def new_task_id(self) -> str:
        return self._ids.next()

    def adopt(self, spec: TaskSpec, record: TaskRecord) -> None:
        """Run `spec` with its queued `record` as `submit` does (the Redis engine hands this
        node the tasks it takes from the cluster's queues this way)."""
        task_id = record.id
        events = RunEvents(self.hub, self.store, task_id, spec.stream_id, spec.save, spec.func_path)
        run = Run(spec, record, next(self._order), self.loop.create_future(), events)
        self._active[task_id] = run
        if spec.stream_id is not None:
            self._streams[spec.stream_id] = task_id
            if spec.stream_id in self.hub:
                # A stream of an earlier run: whoever subscribes from now on follows this run,
                # as when it started at once. A new stream opens when its run starts.
                events.open()
        self._intake.append(run)
        if not self._turn_due:
            self._kick()

    async def run_and_wait(self, spec: TaskSpec) -> TaskRecord:
        """Submit, wait for the end, and re-raise the task's exception (`sync=True`)."""
        task_id = self.submit(spec)
        run = self._active.get(task_id)
        if run is not None:
            record = await asyncio.shield(run.done)
        else:  # the Redis engine: it may run on another node
            record = await self.wait(task_id)
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
        if self.cluster is not None:
            return await self.cluster.wait(task_id, timeout)
        record = self.store.get_task(task_id)
        if record is None:
            raise UnknownTaskError(f"no task with id or name {task_id!r}")
        return record

    @property
    def queue_size(self) -> int:
        return len(self._queue) + len(self._intake)

    def limits(self) -> dict[str, KindLoad]:
        """Per kind (async, thread, process): its limit, its tasks running and waiting, and
        whether they wait because of a limit (`held`), for the health check and the console."""
        return self._queue.load()

    @property
    def running_count(self) -> int:
        return self._queue.running

    def pool_health(self) -> PoolHealth:
        """The process pool's workers: alive, being replaced, failing to start."""
        return self._pool.health()

    def active_records(self) -> list[TaskRecord]:
        return [run.record for run in self._active.values()]

    async def wait_any(self, group: str) -> bool:
        """Wait until one unfinished task of `group` ends; False at once if none is unfinished."""
        pending = [run.done for run in self._active.values() if run.spec.group == group]
        if not pending:
            return False
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        return True

    async def subscribe(
        self, stream_id: str, after: int = 0, sink: Sink | None = None, epoch: str | None = None
    ) -> Subscription:
        """Subscribe to a stream, bringing a finished run back from the store if needed
        (`epoch`: the Redis engine's, see `Hub.subscribe`)."""
        if stream_id not in self.hub:
            record = self.store.latest_run(stream_id)
            if record is not None and record.status.is_final:
                events = await self.loop.run_in_executor(None, self.store.events, record.id)
                # On the Redis engine a node stores the events of the runs it ran only: another
                # node's run (its record came from the cluster) is read from Redis by the hub.
                if events or self.cluster is None:
                    self.hub.restore(
                        stream_id, record.id, events, record.status.value, short_error(record.error)
                    )
        return self.hub.subscribe(stream_id, after, sink, epoch)

    def unsubscribe(self, subscription: Subscription) -> None:
        """End a subscription made with `subscribe`."""
        self.hub.unsubscribe(subscription)

    # -- stopping ----------------------------------------------------------------------------------

    def cancel(self, task_id: str) -> bool:
        """Cancel a queued or running task; False if it has already finished."""
        run = self._active.get(task_id)
        if run is None:
            if self.cluster is not None:
                return self.cluster.cancel(task_id)
            if self.store.get_task(task_id) is None:
                raise UnknownTaskError(f"no task with id {task_id!r}")
            return False
        self._stop(run, TaskStatus.CANCELLED)
        return True

    def _stop(self, run: Run, reason: TaskStatus) -> None:
        if run.record.status is TaskStatus.QUEUED:
            if not run.announced:
                self._intake.remove(run)  # rare, and only this one run: O(n) is fine
            self._queue.remove(run)
            self._finish(run, reason, error=f"{reason.value} before it started")
        else:
            self._execution.stop(run, reason)

    # -- running -----------------------------------------------------------------------------------

    def _kick(self) -> None:
        """Have `_turn` run in the next turn of the loop (once, however often it is asked)."""
        if not self._turn_due and self._loop is not None:
            self._turn_due = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        """One slice of the deferred work: ended attempts first (they free places), then new
        runs into the queue, then starts; what the slice leaves goes on in the next turn."""
        self._turn_due = False
        slice_ = SLICE_SECONDS if self.cluster is None else CLUSTER_SLICE_SECONDS
        began = time.perf_counter()
        until = began + slice_
        ending, intake, clock = self._ending, self._intake, time.perf_counter
        left_at = self._ends_left_at
        # Ends were left over a turn ago: the time since is the length of the turn in between.
        # (On the Redis engine every busy turn is longer, carrying the task plane's pipelines.)
        busy = left_at is not None and began - left_at >= BUSY_TURN_SECONDS
        ends = ENDS_WHEN_BUSY if busy and self.cluster is None else -1
        self._ends_left_at = None
        while ending:
            self._finish(*ending.popleft())
            ends -= 1
            if clock() > until or ends == 0:
                self._kick()
                if ending:
                    self._ends_left_at = clock()
                return
        while intake:
            new = intake.popleft()
            new.announced = True
            try:
                self._notifier.changed(new)
            except StoreError as exc:  # nothing in a queued record can be refused: logged only
                logger.error("task %s: its queued record was not saved: %s", new.id, exc)
            self._queue.put(new)
            if clock() > until:
                self._kick()
                return
        while (ready := self._queue.next_ready()) is not None:
            self._start(ready)
            if clock() > until:
                self._kick()
                return

    def _ended(self, run: Run, status: TaskStatus, result: Any, error: str | None) -> None:
        """An attempt has ended: recorded in a later turn, with the others that end now."""
        self._ending.append((run, status, result, error))
        if not self._turn_due:
            self._kick()

    def _start(self, run: Run) -> None:
        first = run.record.attempt_count == 0
        run.record = run.record.replace(
            status=TaskStatus.RUNNING, started=utcnow(), attempt_count=run.record.attempt_count + 1
        )
        self._notifier.changed(run)
        stream_id = run.spec.stream_id
        if stream_id is not None:
            opened = self.hub.get(stream_id)
            # A later attempt finds its stream open here, unless the attempt before ran on a
            # node that died (the Redis engine): then its stream opens again on this node.
            if opened is None or opened.run_id != run.id or (not first and opened.end is not None):
                run.events.open()
        self._execution.start(run, self._ended)

    def _on_worker_message(self, message: Events | Output) -> None:
        run = self._active.get(message.task_id)
        if run is not None:
            run.events.receive(message)

    # -- the end -----------------------------------------------------------------------------------

    def _finish(
        self, run: Run, status: TaskStatus, result: Any = None, error: str | None = None
    ) -> None:
        if run.record.status is TaskStatus.RUNNING:
            self._queue.ended(run)
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
            output=run.events.output,
        )
        run.record = record
        try:
            self._notifier.changed(run)
        except StoreError as exc:
            logger.error("task %s: %s", run.id, exc)
            run.record = record = record.replace(
                status=TaskStatus.FAILED,
                result=None,
                error=f"the result could not be stored: {exc}",
            )
            self._notifier.changed(run)
        run.events.end(record.status.value, short_error(record.error))
        stream_id = run.spec.stream_id
        if stream_id is not None and self._streams.get(stream_id) == run.id:
            del self._streams[stream_id]
        self._active.pop(run.id, None)
        if not run.done.done():
            run.done.set_result(record)
        if run.spec.hook is not None and (run.spec.save or not record.success):
            # Django Q calls the hook when it saves the task, so not after an unsaved success.
            self._notifier.call_hook(run.spec.hook, record)
        self._kick()

    def _retry_later(self, run: Run, error: str | None) -> None:
        run.record = run.record.replace(status=TaskStatus.QUEUED, error=error)
        self._notifier.changed(run)
        logger.info(
            "task %s failed attempt %d of %d; retrying in %g s",
            run.id,
            run.record.attempt_count,
            run.spec.max_attempts,
            run.spec.retry_delay,
        )
        self._queue.put_later(run, run.spec.retry_delay)
        self._kick()

    def record_from_elsewhere(self, record: TaskRecord) -> None:
        """Keep and announce a record another node changed (the Redis engine)."""
        self.store.save_task(record)
        self._notifier.announce(record)

    def is_running_here(self, task_id: str) -> bool:
        return task_id in self._active

    def add_listener(self, listener: Callable[[TaskRecord], None]) -> None:
        """Call `listener(record)` on the loop after each change of any task's record."""
        self._notifier.add_listener(listener)

    def remove_listener(self, listener: Callable[[TaskRecord], None]) -> None:
        self._notifier.remove_listener(listener)

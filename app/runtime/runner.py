"""The runner: queues checked task calls, starts them within the limits, and records how each
one ends.

`Runner` is what the rest of the package sees. It holds every run it took in until its end, by
task id and by stream id. `submit` does only what its caller must see at once (the checks, the
id, the queued record, which `get` returns from then on); the rest is done in later turns of
the loop, which the runner asks for whenever work is left. Its parts, each handed the state it
shares: `slices` (that deferred work, a slice per turn: ends recorded, new runs queued, runs
started), `finish` (an attempt's end into the run's final record, or a retry), `stopping`
(cancel, and every run at the close), `waiting` (for the ends of tasks), `stamps` (ids and
times). Which run may start next is the queue's (`queue`); where each change of a record goes,
and the hooks, the notifier's (`notify`); how a run executes and stops, `execution`'s; where its
events go, `events`'. Plain asyncio: it never imports aiohttp.web.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskcast.errors import NoRunnerError, RunnerClosedError, StreamBusyError
from taskcast.hub.hub import Hub, Sink, Subscription, hub_options
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.events import RunEvents
from taskcast.runtime.execution import Execution, Run
from taskcast.runtime.finish import Finisher
from taskcast.runtime.notify import Notifier
from taskcast.runtime.pipe import Events, Output
from taskcast.runtime.pool import PoolHealth, ProcessPool
from taskcast.runtime.queue import KindLoad, RunQueue
from taskcast.runtime.run_replay import restore_ended_stream
from taskcast.runtime.slices import BUSY_TURN_SECONDS, ENDS_WHEN_BUSY, DeferredWork
from taskcast.runtime.stamps import TaskIds, utcnow
from taskcast.runtime.stopping import Stopper
from taskcast.runtime.waiting import EndWaits
from taskcast.settings import Settings
from taskcast.spec import TaskSpec
from taskcast.store.store import Store

if TYPE_CHECKING:
    from taskcast.cluster.tasks import TaskPlane

# BUSY_TURN_SECONDS, ENDS_WHEN_BUSY and utcnow live beside the work they pace or stamp; they are
# named here too, as the runner's.
__all__ = ["BUSY_TURN_SECONDS", "ENDS_WHEN_BUSY", "Runner", "utcnow"]


class Runner:
    """Runs tasks of every kind inside this process; see the module docstring."""

    def __init__(self, settings: Settings, hub: Hub, store: Store) -> None:
        self.settings = settings
        self._hub = hub
        self.store = store
        #: the runs this node holds from their submit to their end, by task id; and the run that
        #: holds each stream id meanwhile (one at a time)
        self._active: dict[str, Run] = {}
        self._streams: dict[str, str] = {}
        self._order = itertools.count()
        self._closing = False
        self._notifier = Notifier(store)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closing_task: asyncio.Task[None] | None = None
        self._turn_due = False
        self._ids = TaskIds()
        #: the Redis engine's task plane (`taskcast.cluster.tasks`); None on the memory engine
        self.cluster: TaskPlane | None = None
        # Each part is handed the state it shares and the runner's callbacks it calls: `_kick`
        # asks for another turn of the deferred work, `_ended` takes an attempt's end to it.
        kick, closing = self._kick, lambda: self._closing
        self._pool = ProcessPool(
            settings.process_workers,
            settings.start_method,
            self._on_worker_message,
            kick,
            settings.worker_initializer,
            cancel_grace=settings.cancel_grace,
            start_timeout=settings.worker_start_timeout,
        )
        execution = Execution(settings, self._pool, kick, closing, self._ended)
        self._queue = queue = RunQueue(
            settings.max_async_tasks,
            settings.thread_workers,
            self._pool,
            lambda: execution.threads_busy,
            kick,
            settings.max_concurrency,
        )
        finish = Finisher(self._active, self._streams, queue, self._notifier, kick, closing).finish
        self._deferred = DeferredWork(queue, execution, self._notifier, hub, finish, kick)
        self._intake, self._ending = self._deferred.intake, self._deferred.ending
        self._stopper = Stopper(
            self._active, self._intake, queue, execution, finish, store, settings.cancel_grace
        )
        self._waits = EndWaits(self._active, store)

    @property
    def hub(self) -> Hub:
        """The hub the runs publish through, for the runner's life: its parts hold it too."""
        return self._hub

    @classmethod
    def from_settings(cls, settings: Settings, hub: Hub | None = None) -> Runner:
        """A runner with its own store, and its own hub unless given one (the Redis engine's),
        each sized by `settings` (nothing opened yet)."""
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
        return cls(settings, hub if hub is not None else Hub(**hub_options(settings)), store)

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
        await self._stopper.stop_all(grace)
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
        self.adopt(spec, task_id, utcnow())
        return task_id

    def new_task_id(self) -> str:
        return self._ids.next()

    def adopt(
        self, spec: TaskSpec, record: TaskRecord | str, enqueued: datetime | None = None
    ) -> None:
        """Run `spec` with its queued `record` as `submit` does (the Redis engine hands this
        node the tasks it takes from the cluster's queues this way); given only a task id, the
        queued record is made when it is first read (see `Run`)."""
        task_id = record if isinstance(record, str) else record.id
        events = RunEvents(self.hub, self.store, task_id, spec.stream_id, spec.save, spec.func_path)
        run = Run(spec, record, next(self._order), self.loop.create_future(), events, enqueued)
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
        return await self._waits.wait_as_call(self.submit(spec), self.cluster)

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
        return await self._waits.wait(task_id, timeout, self.cluster)

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
        return await self._waits.wait_any(group)

    async def subscribe(
        self, stream_id: str, after: int = 0, sink: Sink | None = None, epoch: str | None = None
    ) -> Subscription:
        """Subscribe to a stream, bringing a finished run back from the store if needed
        (`epoch`: the Redis engine's, see `Hub.subscribe`)."""
        if stream_id not in self.hub:
            await restore_ended_stream(
                self.hub, self.store, self.loop, stream_id, self.cluster is not None
            )
        return self.hub.subscribe(stream_id, after, sink, epoch)

    def unsubscribe(self, subscription: Subscription) -> None:
        """End a subscription made with `subscribe`."""
        self.hub.unsubscribe(subscription)

    # -- stopping ----------------------------------------------------------------------------------

    def cancel(self, task_id: str) -> bool:
        """Cancel a queued or running task; False if it has already finished."""
        return self._stopper.cancel(task_id, self.cluster)

    # -- running -----------------------------------------------------------------------------------

    def _kick(self) -> None:
        """Have `_turn` run in the next turn of the loop (once, however often it is asked)."""
        if not self._turn_due and self._loop is not None:
            self._turn_due = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._turn_due = False
        self._deferred.run_slice(self.cluster is not None)

    def _ended(self, run: Run, status: TaskStatus, result: Any, error: str | None) -> None:
        """An attempt has ended: recorded in a later turn, with the others that end now."""
        self._ending.append((run, status, result, error))
        if not self._turn_due:
            self._kick()

    def _on_worker_message(self, message: Events | Output) -> None:
        run = self._active.get(message.task_id)
        if run is not None:
            run.events.receive(message)

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

"""The Redis engine's task plane: tasks submitted on any node, run by a node with room, and
their records on every node (docs/scale-out.md).

`TaskPlane` is what the runner, the core and recovery see. It builds the parts, each in its
own module, and hands them the state they share:
- `task_submit`: submit puts the task in its hash and its id in its kind's queue, and takes
  its stream id, in one script (`SUBMIT`), so one run per stream id holds across the cluster;
- `task_taking`: each node takes from a kind's queue only while it has room for that kind,
  claims each task (`CLAIM`: a redelivered entry never runs twice) and runs it as one
  submitted there;
- `task_outbox`: every change of the record of a task this node runs goes, in order, to the
  task's hash and the stream of changes (`UPDATE`);
- `task_changes`: each node follows the stream of changes into its own store, so `get`,
  `result`, the group calls, the console and its live feed work there unchanged.
Waiting for a task's end and cancelling are here. Cancel: a task nobody has taken is marked
cancelled in its hash (`CANCEL`) and never runs; a taken one is stopped by its owner, told on
the owner's pub/sub channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskcast.cluster import keys, task_scripts
from taskcast.cluster.cluster_hub import ClusterHub
from taskcast.cluster.connection import BLOCK_MS, RETRY_PAUSE, engine_errors
from taskcast.cluster.task_changes import ChangeFollower
from taskcast.cluster.task_codec import decode_record
from taskcast.cluster.task_outbox import Outbox
from taskcast.cluster.task_scripts import CHANGES_KEPT, RECORD_TTL
from taskcast.cluster.task_submit import Submitter
from taskcast.cluster.task_taking import Owned, Taker
from taskcast.errors import UnknownTaskError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.queue import KINDS
from taskcast.spec import TaskSpec

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from taskcast.cluster.node import Node
    from taskcast.runtime.runner import Runner

# RECORD_TTL and CHANGES_KEPT live beside the scripts they are given to; they are named here
# too, as the task plane's lifetimes.
__all__ = ["CHANGES_KEPT", "RECORD_TTL", "TaskPlane"]

logger = logging.getLogger(__name__)

#: the records of the latest ends, for waiters that come just after them
RECENT_ENDS_KEPT = 10_000


async def _nothing_to_wait_for(stream_id: str) -> None:
    """A hub without a relay (tests that build a plane over the plain hub) writes no streams."""


class TaskPlane:
    """This node's part of the cluster's tasks; see the module docstring."""

    def __init__(self, node: Node, runner: Runner) -> None:
        self.node = node
        self.runner = runner
        self.redis: Redis = node.redis
        self._cancel = self.redis.register_script(task_scripts.CANCEL)
        #: tasks this node has claimed and whose end is not yet written to Redis (a claim
        #: adds one; the outbox lets it go once its end is written)
        self.owned: dict[str, Owned] = {}
        #: stream ids held by unfinished tasks, as the stream of changes tells (a quick check
        #: at submit; the SUBMIT script decides)
        self._busy_streams: dict[str, str] = {}
        self._waiters: dict[str, list[asyncio.Future[TaskRecord]]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        #: the latest ends' records, newest last (RECENT_ENDS_KEPT at most)
        self._recent_ends: dict[str, TaskRecord] = {}
        self._loops: list[asyncio.Task[None]] = []
        #: True once `close` begins: every loop ends at its next turn
        self._closed = False
        # Each part is handed only the shared state and the plane's callbacks it uses (its
        # handling of an end, its background tasks, its listener), so each shows what it touches.
        self._submitter = Submitter(
            node, runner, self._busy_streams, self._ended, self._in_background
        )
        hub = runner.hub
        ends: Callable[[str], Awaitable[None]] = (
            hub.relay.end_written if isinstance(hub, ClusterHub) else _nothing_to_wait_for
        )
        self._outbox = Outbox(node, self.owned, self._is_closed, ends)
        self._taker = Taker(node, runner, self.owned, self._local_change, self._is_closed)
        self._changes = ChangeFollower(
            node, runner, self._busy_streams, self._ended, self._is_closed
        )

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        for kind in KINDS:
            await self._taker.make_group(kind)
        self.runner.add_listener(self._local_change)
        loop = asyncio.get_running_loop()
        name = f"taskcast node {self.node.id}"
        self._loops = [
            loop.create_task(self._outbox.run(), name=f"{name} records"),
            loop.create_task(self._changes.run(), name=f"{name} changes"),
            loop.create_task(self._hear_cancels(), name=f"{name} cancels"),
            *(loop.create_task(self._taker.run(kind), name=f"{name} {kind}") for kind in KINDS),
        ]
        self.runner.cluster = self

    def stop_taking(self) -> None:
        """Take no more tasks from the queues (the node is closing)."""
        self._taker.stop()

    async def close(self, flush_timeout: float = 5.0) -> None:
        """Write what is left of the records (for up to `flush_timeout` s), then stop."""
        self.stop_taking()
        await self._outbox.flush(flush_timeout)
        self._closed = True
        pending = [*self._loops, *self._background]
        for task in pending:
            task.cancel()
        if pending:
            # redis-py may swallow a cancel in the middle of a blocking read; the loops also
            # look at `_closed`, so each ends within one read.
            await asyncio.wait(pending, timeout=BLOCK_MS / 1000 + 2)
        if self.runner.cluster is self:
            self.runner.remove_listener(self._local_change)
            self.runner.cluster = None

    # -- submitting (task_submit) ----------------------------------------------------------------

    def submit(self, spec: TaskSpec) -> str:
        """Submit from the loop's thread without waiting for Redis (`Submitter.submit`)."""
        return self._submitter.submit(spec)

    async def submit_confirmed(self, spec: TaskSpec) -> str:
        """Submit and return once Redis has the task; StreamBusyError, EngineUnavailableError."""
        return await self._submitter.submit_confirmed(spec)

    # -- waiting for ends ------------------------------------------------------------------------

    async def wait(self, task_id: str, timeout: float | None) -> TaskRecord:
        """The record once the task has ended, on whichever node it runs."""
        future: asyncio.Future[TaskRecord] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(task_id, []).append(future)
        try:
            ended = self._recent_ends.get(task_id)
            if ended is not None:
                return ended
            record = self.runner.store.get_task(task_id)
            if record is None and not self._submitter.is_sending(task_id):
                # Not in this node's store (another node's task not heard of yet, or a success
                # the store's save_limit let go): Redis has every task's record for a while.
                record = await self.record_in_redis(task_id)
                if record is None:
                    raise UnknownTaskError(f"no task with id or name {task_id!r}")
            if record is not None and record.status.is_final:
                return record
            async with asyncio.timeout(timeout):
                return await future
        finally:
            waiting = self._waiters.get(task_id, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiters.pop(task_id, None)

    async def record_in_redis(self, task_id: str) -> TaskRecord | None:
        """The task's record as Redis has it (None when Redis has no such task)."""
        async with engine_errors(f"reading task {task_id}"):
            raw = await self.redis.hget(keys.task(task_id), b"record")
        return decode_record(raw) if isinstance(raw, bytes) else None

    def _ended(self, record: TaskRecord) -> None:
        # Kept for waiters that come after this: the store may let the record go at once (its
        # save_limit) before Redis has the end (a local end is written there a moment later).
        recent = self._recent_ends
        recent[record.id] = record
        if len(recent) > RECENT_ENDS_KEPT:
            del recent[next(iter(recent))]
        stream_id = record.stream_id
        if stream_id is not None and self._busy_streams.get(stream_id) == record.id:
            del self._busy_streams[stream_id]
        for future in self._waiters.pop(record.id, []):
            if not future.done():
                future.set_result(record)

    # -- cancelling ------------------------------------------------------------------------------

    def cancel(self, task_id: str) -> bool:
        """Cancel a task this node does not run: False if it has ended, else True and the
        cancel goes its way (the owner's runner stops it, as a local cancel)."""
        record = self.runner.store.get_task(task_id)
        if record is None:
            raise UnknownTaskError(f"no task with id {task_id!r}")
        if record.status.is_final:
            return False
        self._in_background(self.cancel_anywhere(record.id))
        return True

    async def cancel_anywhere(self, task_id: str) -> str:
        """Cancel a task of the cluster; says what happened: 'queued' (it never runs), 'owner'
        (its node was told), 'final' (it had ended) or 'gone'."""
        reply = await self._cancel(keys=[keys.task(task_id)])
        outcome: str = reply[0].decode()
        if outcome == "owner":
            owner = reply[1].decode()
            if owner == self.node.id:
                self.runner.cancel(task_id)
            else:
                await self.redis.publish(keys.cancel_channel(owner), task_id.encode())
        elif outcome == "queued":
            record = decode_record(reply[1]).replace(
                status=TaskStatus.CANCELLED,
                stopped=datetime.now(UTC),
                error="cancelled before it started",
            )
            await self._outbox.write(record, Owned(record.kind, reply[2], record.stream_id))
            self.runner.record_from_elsewhere(record)
            self._ended(record)
        return outcome

    async def _hear_cancels(self) -> None:
        while not self._closed:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(keys.cancel_channel(self.node.id))
                while not self._closed:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        task_id = message["data"].decode()
                        if self.runner.is_running_here(task_id):
                            logger.info("task %s: cancelled from another node", task_id)
                            self.runner.cancel(task_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("node %s: cannot hear cancels (%s); retrying", self.node.id, exc)
                await asyncio.sleep(RETRY_PAUSE)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    # -- taking tasks (task_taking) --------------------------------------------------------------

    def room(self, kind: str) -> int:
        """How many more tasks of `kind` this node could start now (`Taker.room`)."""
        return self._taker.room(kind)

    async def take_entry(self, kind: str, entry: bytes, task_id: str) -> None:
        """Claim the task of a queue entry this node was given, and run it if it may."""
        await self._taker.take_entry(kind, entry, task_id)

    async def take_entries(self, kind: str, given: list[tuple[bytes, str]]) -> None:
        """Claim the tasks of the queue entries this node was given (entry, task id), in one
        pipeline, and run those it may, in their order."""
        await self._taker.take_entries(kind, given)

    # -- records (task_outbox, task_changes) -----------------------------------------------------

    def _local_change(self, record: TaskRecord) -> None:
        """A listener of the runner: a change of a task this node runs goes to Redis; an end
        also frees its place, is remembered as ended and wakes its waiters."""
        if record.id not in self.owned:
            return
        self._outbox.add(record)
        if record.status.is_final:
            self._taker.released(self.owned[record.id].kind)
            self._changes.note_ended(record.id)
            self._ended(record)

    def apply(self, record: TaskRecord) -> None:
        """Keep another node's change of a record, unless this node knows better
        (`ChangeFollower.apply`)."""
        self._changes.apply(record)

    def _is_closed(self) -> bool:
        """Whether `close` has begun: the parts' loops ask at each turn."""
        return self._closed

    def _in_background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

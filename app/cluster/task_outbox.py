"""The outbox of this node's record changes: each goes to Redis, in order, in the background.

Every change of the record of a task this node runs goes, in order, to the task's hash and
the stream of changes; a final one also acknowledges the queue entry and releases the stream
id (`UPDATE`). The runner tells its listeners without waiting, so a change waits here until
the writer task sends it, with what piled up meanwhile, in one pipeline. A change Redis did
not take stays until it does: the local store has it already.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from taskcast.cluster import keys, task_scripts
from taskcast.cluster.connection import RETRY_PAUSE
from taskcast.cluster.task_codec import encode_record
from taskcast.cluster.task_scripts import CHANGES_KEPT, RECORD_TTL

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from taskcast.cluster.node import Node
    from taskcast.cluster.task_taking import Owned
    from taskcast.records import TaskRecord

__all__ = ["Outbox"]

logger = logging.getLogger(__name__)

#: record changes written in one pipeline at most
WRITE_BATCH = 200
#: seconds a final record waits at most for its stream's end to reach Redis before it is written
END_WAIT = 2.0


class Outbox:
    """The record changes of this node's tasks waiting for Redis, and the task that writes them."""

    def __init__(
        self,
        node: Node,
        owned: dict[str, Owned],
        closed: Callable[[], bool],
        stream_end_written: Callable[[str], Awaitable[None]],
    ) -> None:
        self.node = node
        self.redis: Redis = node.redis
        self._update = self.redis.register_script(task_scripts.UPDATE)
        #: the plane's claimed tasks: where each one's queue entry is; one whose end is written
        #: leaves them
        self._owned = owned
        self._closed = closed
        self._stream_end_written = stream_end_written
        #: record changes of owned tasks waiting to be written, in order
        self._records: collections.deque[TaskRecord] = collections.deque()
        self._ready = asyncio.Event()

    def add(self, record: TaskRecord) -> None:
        """A change of a task this node owns, to be written after those before it."""
        self._records.append(record)
        self._ready.set()

    async def flush(self, timeout: float) -> None:
        """Return once every waiting change is written, or after `timeout` seconds."""
        if self._records:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    while self._records:
                        self._ready.set()
                        await asyncio.sleep(0.01)

    async def run(self) -> None:
        """Write the waiting changes whenever some come, until the plane closes."""
        outbox = self._records
        while not self._closed():
            await self._ready.wait()
            self._ready.clear()
            while outbox:
                waiting = len(outbox)
                batch = self._next_writes(waiting)
                await self._streams_ended(batch)
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for record in batch:
                            await self.write(record, self._owned[record.id], client=pipe)
                        replies: list[Any] = await pipe.execute(raise_on_error=False)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    replies = [exc] * len(batch)
                written: set[str] = set()
                for record, reply in zip(batch, replies, strict=True):
                    if isinstance(reply, Exception):
                        # Kept until Redis takes it: the local store has it already.
                        logger.warning(
                            "task %s (node %s): its record waits for Redis: %s",
                            record.id,
                            self.node.id,
                            reply,
                        )
                        continue
                    written.add(record.id)
                    if record.status.is_final:
                        self._owned.pop(record.id, None)
                # What was waiting when the batch was made, less what Redis took; then what
                # came meanwhile, in order.
                kept = [r for i, r in enumerate(outbox) if i >= waiting or r.id not in written]
                outbox.clear()
                outbox.extend(kept)
                if len(written) < len(batch):
                    await asyncio.sleep(RETRY_PAUSE)

    async def _streams_ended(self, batch: list[TaskRecord]) -> None:
        """Wait (END_WAIT at most) until the ends of the streams of the batch's final records
        are in Redis. The record and the stream reach other nodes by separate ways; in this
        order a node that sees a task's end can serve its stream's end, and a page it serves
        right after gets the run that ended, not the one before it (a retry's, say)."""
        ends = [
            self._stream_end_written(record.stream_id)
            for record in batch
            if record.status.is_final and record.stream_id is not None
        ]
        if ends:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(END_WAIT):
                    await asyncio.gather(*ends)

    def _next_writes(self, waiting: int) -> list[TaskRecord]:
        """The newest waiting change of each task, for the first WRITE_BATCH tasks: a change
        another one of the same task follows says nothing the later one does not (a task that
        ran for a moment goes from queued to its end without `running` in between), so Redis
        and every other node get one change less."""
        newest: dict[str, TaskRecord] = {}
        for index, record in enumerate(self._records):
            if index >= waiting:
                break
            if record.id in newest or len(newest) < WRITE_BATCH:
                newest[record.id] = record
        return list(newest.values())

    async def write(self, record: TaskRecord, owned: Owned, client: Any = None) -> None:
        """One change of a record to Redis (`UPDATE`), or to `client`, a pipeline."""
        stream_id = owned.stream_id
        await self._update(
            client=client,
            keys=[
                keys.task(record.id),
                keys.CHANGES,
                keys.task_queue(owned.kind),
                keys.node_tasks(self.node.id),
                keys.stream_owner(stream_id) if stream_id is not None else b"-",
            ],
            args=[
                record.id,
                encode_record(record),
                record.status.value,
                RECORD_TTL * 1000,
                self.node.id,
                CHANGES_KEPT,
                "1" if record.status.is_final else "0",
                owned.entry,
                "1" if stream_id is not None else "0",
                keys.TASK_GROUP,
            ],
        )

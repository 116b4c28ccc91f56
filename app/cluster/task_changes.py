"""This node's copy of the cluster's task records, kept from the stream of changes.

Every change of the record of a task a node runs goes to the stream of changes
(`keys.CHANGES`, trimmed to about `CHANGES_KEPT` entries). Each node follows it into its own
store and tells its listeners, so `get`, `result`, the group calls, the console and its live
feed work there unchanged. A node that starts first copies the record of every task Redis
still keeps, from the tasks' hashes, so its list has the tasks older than the changes kept too.
A change never undoes an end this node knows: a task that ended is remembered (`ENDED_KEPT`
ids at most).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskcast.cluster import keys
from taskcast.cluster.connection import BLOCK_MS, RETRY_PAUSE
from taskcast.cluster.task_codec import decode_record
from taskcast.records import TaskRecord

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from taskcast.cluster.node import Node
    from taskcast.runtime.runner import Runner

__all__ = ["ChangeFollower"]

logger = logging.getLogger(__name__)

#: changes read from the stream of changes at once
CHANGES_READ = 500
#: task hashes read at once when a node copies the cluster's tasks at start
COPY_BATCH = 500
#: ids of ended tasks remembered, so a stale change never undoes an end
ENDED_KEPT = 100_000


class ChangeFollower:
    """Copies the cluster's task records into this node's store, then follows their changes."""

    def __init__(
        self,
        node: Node,
        runner: Runner,
        busy_streams: dict[str, str],
        ended: Callable[[TaskRecord], None],
        closed: Callable[[], bool],
    ) -> None:
        self.node = node
        self.runner = runner
        self.redis: Redis = node.redis
        #: the plane's stream ids held by unfinished tasks: a change that starts one holds it
        self._busy_streams = busy_streams
        #: the plane's handling of an end (its waiters, the stream id let go)
        self._ended = ended
        self._closed = closed
        #: tasks whose end this node applied or made, newest last (ENDED_KEPT at most)
        self._ended_ids: dict[str, None] = {}
        #: the changes kept from before this node started have been read
        self._caught_up = False
        self._changes_at = b"0-0"

    async def run(self) -> None:
        """Copy the records of every task Redis still keeps, then follow the changes: the
        changes keep only the newest ~10,000, and a node that joins later must list the
        cluster's older tasks too."""
        # Where the changes stand now: what is older is in the tasks' hashes, what is newer
        # the follower reads.
        try:
            newest: Any = await self.redis.xrevrange(keys.CHANGES, count=1)
            if newest:
                self._changes_at = newest[0][0]  # an entry id, as bytes
            await self._copy_known_tasks()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: the changes it keeps are read instead
            logger.warning("node %s: could not copy the cluster's tasks: %s", self.node.id, exc)
            self._changes_at = b"0-0"
        await self._follow_changes()

    async def _copy_known_tasks(self) -> None:
        """Every task hash's record into this node's store, unless the store has it already."""
        found = 0
        batch: list[bytes] = []
        async for key in self.redis.scan_iter(match=keys.TASKS_PATTERN, count=COPY_BATCH):
            batch.append(key)
            if len(batch) >= COPY_BATCH:
                found += await self._copy_tasks(batch)
                batch = []
        if batch:
            found += await self._copy_tasks(batch)
        if found:
            logger.info("node %s: copied %d of the cluster's tasks", self.node.id, found)

    async def _copy_tasks(self, task_keys: list[bytes]) -> int:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in task_keys:
                pipe.hget(key, b"record")
            raws: list[Any] = await pipe.execute()
        copied = 0
        for raw in raws:
            if not isinstance(raw, bytes):
                continue
            record = decode_record(raw)
            if self.runner.store.get_task(record.id) is None:
                self.apply(record)
                copied += 1
        return copied

    async def _follow_changes(self) -> None:
        """Keep this node's store as the stream of changes says, from its oldest kept entry."""
        while not self._closed():
            try:
                reply: Any = await self.redis.xread(
                    {keys.CHANGES: self._changes_at}, count=CHANGES_READ, block=BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("node %s: cannot read the changes: %s", self.node.id, exc)
                await asyncio.sleep(RETRY_PAUSE)
                continue
            read = 0
            for _stream, entries in reply or ():
                read += len(entries)
                for entry, fields in entries:
                    self._changes_at = entry
                    if fields[b"node"].decode() != self.node.id:
                        self.apply(decode_record(fields[b"record"]))
            if read < CHANGES_READ:
                self._caught_up = True

    def apply(self, record: TaskRecord) -> None:
        """Keep another node's change of a record, unless this node knows better (it runs
        the task, or has its end already)."""
        if self.runner.is_running_here(record.id):
            return
        if not record.status.is_final:
            if record.id in self._ended_ids:
                return
            if not self._caught_up:
                # Reading the changes kept from before this node started: its store may have
                # the end already (a query per change only until the node has caught up).
                known = self.runner.store.get_task(record.id)
                if known is not None and known.id == record.id and known.status.is_final:
                    return
        if record.stream_id is not None and not record.status.is_final:
            self._busy_streams[record.stream_id] = record.id
        self.runner.record_from_elsewhere(record)
        if record.status.is_final:
            self.note_ended(record.id)
            self._ended(record)

    def note_ended(self, task_id: str) -> None:
        """Remember that `task_id` ended, so a stale change of it is not applied over its end."""
        ended = self._ended_ids
        ended[task_id] = None
        if len(ended) > ENDED_KEPT:
            del ended[next(iter(ended))]

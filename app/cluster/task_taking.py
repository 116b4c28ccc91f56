"""The taking of tasks from the cluster's queues: as many as this node has room for.

Each node reads a kind's queue (a stream read by one consumer group, each node a consumer)
only while it has room for that kind, claims each entry in the task's hash (`CLAIM`: a
redelivered entry never runs twice) and hands the task to its runner, which runs it exactly as
a task submitted there. Room is counted from the claim to the end of the task's run on this
node.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskcast.cluster import keys, task_scripts
from taskcast.cluster.connection import BLOCK_MS, RETRY_PAUSE
from taskcast.cluster.task_codec import decode_record, decode_spec
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.queue import KINDS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from taskcast.cluster.node import Node
    from taskcast.runtime.runner import Runner

__all__ = ["Owned", "Taker"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(slots=True)
class Owned:
    """A task this node has claimed: where its queue entry is, and its stream id."""

    kind: str
    entry: bytes
    stream_id: str | None


class Taker:
    """Reads this node's share of the queues and claims the tasks it runs."""

    def __init__(
        self,
        node: Node,
        runner: Runner,
        owned: dict[str, Owned],
        local_change: Callable[[TaskRecord], None],
        closed: Callable[[], bool],
    ) -> None:
        self.node = node
        self.runner = runner
        self.redis: Redis = node.redis
        self._claim = self.redis.register_script(task_scripts.CLAIM)
        #: the plane's claimed tasks: each claim adds one
        self._owned = owned
        #: the plane's listener of record changes, for a claimed task that cannot run here
        self._local_change = local_change
        self._closed = closed
        self._room_freed: dict[str, asyncio.Event] = {kind: asyncio.Event() for kind in KINDS}
        #: per kind, the tasks this node has claimed and whose end it has not yet seen
        self._claimed: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._taking = True

    async def make_group(self, kind: str) -> None:
        """The consumer group of a kind's queue (again, after Redis lost its data)."""
        with contextlib.suppress(Exception):  # BUSYGROUP: another node made it
            await self.redis.xgroup_create(
                keys.task_queue(kind), keys.TASK_GROUP, id="0", mkstream=True
            )

    def stop(self) -> None:
        """Take no more tasks from the queues (the node is closing)."""
        self._taking = False
        for event in self._room_freed.values():
            event.set()

    def released(self, kind: str) -> None:
        """A task of `kind` this node claimed has ended: its place is free again."""
        self._claimed[kind] -= 1
        self._room_freed[kind].set()

    def room(self, kind: str) -> int:
        """How many more tasks of `kind` this node could start now: its limit less the tasks
        of that kind it has claimed and not ended (counted from the claim on, as a claimed
        task reaches the runner's queue only in a later turn of the loop)."""
        room = self.runner.limits()[kind].limit - self._claimed[kind]
        overall = self.runner.settings.max_concurrency
        if overall is not None:
            room = min(room, overall - sum(self._claimed.values()))
        return room

    async def run(self, kind: str) -> None:
        """Read the queue of `kind` while this node has room for it, until it stops taking."""
        queue = keys.task_queue(kind)
        freed = self._room_freed[kind]
        while self._taking and not self._closed():
            room = self.room(kind)
            if room <= 0:
                freed.clear()
                with contextlib.suppress(TimeoutError):
                    # Woken when one of this node's tasks ends; the timeout also notices
                    # room made otherwise (a process worker replaced).
                    await asyncio.wait_for(freed.wait(), 1.0)
                continue
            try:
                reply: Any = await self.redis.xreadgroup(
                    keys.TASK_GROUP.decode(), self.node.id, {queue: ">"}, count=room, block=BLOCK_MS
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.debug("node %s: cannot read the %s queue: %s", self.node.id, kind, exc)
                await asyncio.sleep(RETRY_PAUSE)
                if "NOGROUP" in str(exc):  # Redis restarted without its data
                    await self.make_group(kind)
                continue
            for _queue, entries in reply or ():
                given = [(entry, fields[b"id"].decode()) for entry, fields in entries]
                await self.take_entries(kind, given)

    async def take_entry(self, kind: str, entry: bytes, task_id: str) -> None:
        """Claim the task of a queue entry this node was given, and run it if it may."""
        await self.take_entries(kind, [(entry, task_id)])

    async def take_entries(self, kind: str, given: list[tuple[bytes, str]]) -> None:
        """Claim the tasks of the queue entries this node was given (entry, task id), in one
        pipeline, and run those it may, in their order."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for _entry, task_id in given:
                    await self._claim(
                        keys=[keys.task(task_id), keys.node_tasks(self.node.id)],
                        args=[self.node.id, task_id],
                        client=pipe,
                    )
                replies: list[Any] = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            replies = [exc] * len(given)
        for (entry, task_id), reply in zip(given, replies, strict=True):
            await self._after_claim(kind, entry, task_id, reply)

    async def _after_claim(self, kind: str, entry: bytes, task_id: str, reply: Any) -> None:
        """What the CLAIM script answered for one entry: run its task here, or skip it."""
        if isinstance(reply, Exception):
            # Still pending for this node: recovered if this node dies, else read again.
            logger.error("task %s (node %s): cannot be claimed: %s", task_id, self.node.id, reply)
            return
        outcome = reply[0].decode()
        if outcome != "ok":
            logger.debug("task %s: queue entry skipped (%s)", task_id, outcome)
            with contextlib.suppress(Exception):
                await self.redis.xack(keys.task_queue(kind), keys.TASK_GROUP, entry)
                await self.redis.xdel(keys.task_queue(kind), entry)
            return
        record = decode_record(reply[1])
        self._owned[task_id] = Owned(kind, entry, record.stream_id)
        self._claimed[kind] += 1
        try:
            spec = decode_spec(reply[2])
        except Exception as exc:
            logger.error("task %s (node %s): cannot run here: %s", task_id, self.node.id, exc)
            failed = record.replace(
                status=TaskStatus.FAILED,
                stopped=datetime.now(UTC),
                error=f"node {self.node.id} cannot run it: {exc}",
            )
            self.runner.record_from_elsewhere(failed)
            # Through the plane's listener, as any change of a claimed task: the failure is
            # written to Redis and the place it took is freed.
            self._local_change(failed)
            return
        self.runner.adopt(spec, record)

"""Recovery of dead nodes on the Redis engine: what a node that died (SIGKILL, power) held is
taken back by a live one (docs/scale-out.md, "A node that dies").

Every node runs the loop; one at a time does the work, the holder of `keys.RECOVERY_LOCK` (a
key with expiry that its holder renews at each pass, so it passes to another node within
`LOCK_TTL` when the holder dies). At each pass the holder lists the nodes that hold something,
a task set (`keys.node_tasks`) or a consumer in the queues' group, and whose liveness key is
gone. A node seen missing for `CONFIRM_AFTER` seconds is recovered: after a Redis pause every
key may have expired at once, and a live node renews its key within one renewal period.

For each task of a dead node, one compare-and-set script (`task_scripts.RECOVER`):
- running: its record becomes `interrupted` naming the node, or, when its `max_attempts`
  allows, `queued` again for another attempt on a live node; the change goes to the task's
  hash and `taskcast:changes` like any other, so every node's store and waiters see it;
- claimed (or only given by the group) and not started: its owner is cleared and it is queued
  again, so a live node claims it and it runs once;
- ended: only its queue entry and its place in the node's set are cleaned up.
The dead node's run of the task's stream is ended first, epoch-checked (so an end can never
reach a later run of that stream id), and the stream id is released only after. Every step
checks before it writes, so a second pass, or one after a pass that died half way, finds the
work done and changes nothing. Last, the node's set and its consumer in the group go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from taskcast.cluster import keys, task_scripts
from taskcast.cluster.node import NODE_TTL
from taskcast.cluster.stream_ops import END_SCRIPT
from taskcast.cluster.task_codec import decode_record, encode_record, max_attempts_of
from taskcast.cluster.tasks import CHANGES_KEPT, RECORD_TTL
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.queue import KINDS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from taskcast.cluster.node import Node
    from taskcast.cluster.tasks import TaskPlane

__all__ = ["CONFIRM_AFTER", "LOCK_TTL", "RECOVER_EVERY", "Recovery"]

logger = logging.getLogger(__name__)

#: seconds between two passes of the loop
RECOVER_EVERY = 2.0
#: seconds the recovery lock outlives its holder's last pass
LOCK_TTL = 3 * RECOVER_EVERY
#: seconds a node must be seen missing before its tasks are taken back (two of its renewals)
CONFIRM_AFTER = 3.5
#: attempts at one task whose hash changes under the recovery, within one pass
TRIES = 3


class Recovery:
    """This node's part in recovering dead nodes; see the module docstring."""

    def __init__(self, node: Node, tasks: TaskPlane, stream_expiry: float) -> None:
        self.node = node
        self.tasks = tasks
        self.redis: Redis = node.redis
        self._expiry = max(1, round(stream_expiry))
        self._recover = self.redis.register_script(task_scripts.RECOVER)
        self._hold = self.redis.register_script(task_scripts.HOLD_LOCK)
        self._release = self.redis.register_script(task_scripts.RELEASE_LOCK)
        self._end_stream = self.redis.register_script(END_SCRIPT)
        #: nodes seen holding something without a liveness key: since when (monotonic)
        self._missing: dict[str, float] = {}
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop().create_task(
            self._run(), name=f"taskcast recovery {self.node.id}"
        )

    async def close(self) -> None:
        """Stop the loop and let the lock go, so another node takes over at its next pass."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        with contextlib.suppress(Exception):
            await self._release(keys=[keys.RECOVERY_LOCK], args=[self.node.id])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(RECOVER_EVERY)
            try:
                await self.pass_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis away or paused: the next pass tries again; nothing is half written,
                # as each task's change is one script.
                logger.warning("node %s: recovery pass failed: %s", self.node.id, exc)

    async def _hold_lock(self) -> bool:
        held = await self._hold(
            keys=[keys.RECOVERY_LOCK], args=[self.node.id, int(LOCK_TTL * 1000)]
        )
        return bool(held)

    async def pass_once(self) -> list[str]:
        """One pass: the ids of the nodes recovered (none unless this node holds the lock)."""
        if not await self._hold_lock():
            self._missing.clear()  # another node watches; its view is the one that counts
            return []
        holding = await self.holding_nodes()
        alive = set(await self.node.alive_nodes())
        now = time.monotonic()
        missing = holding - alive - {self.node.id}
        self._missing = {node_id: self._missing.get(node_id, now) for node_id in missing}
        recovered = []
        for node_id, since in sorted(self._missing.items()):
            if now - since < CONFIRM_AFTER:
                continue
            if await self.recover_node(node_id):
                del self._missing[node_id]
                recovered.append(node_id)
            if not await self._hold_lock():
                break
        return recovered

    async def holding_nodes(self) -> set[str]:
        """The nodes with a task set or a consumer in a queue's group, live or not."""
        prefix = len(keys.node_tasks(""))
        found = {
            key[prefix:].decode()
            async for key in self.redis.scan_iter(match=keys.NODE_TASKS_PATTERN, count=500)
        }
        for kind in KINDS:
            for consumer in await self._consumers(kind):
                name = consumer["name"]
                found.add(name.decode() if isinstance(name, bytes) else str(name))
        return found

    async def _consumers(self, kind: str) -> list[dict[str, Any]]:
        try:
            consumers: list[dict[str, Any]] = await self.redis.xinfo_consumers(
                keys.task_queue(kind), keys.TASK_GROUP
            )
        except Exception as exc:
            if "NOGROUP" in str(exc) or "no such key" in str(exc):
                return []  # no queue of that kind yet, or Redis lost it
            raise
        return consumers

    async def _pending(self, kind: str, node_id: str) -> list[bytes]:
        """The queue entries the group gave `node_id` and nobody acknowledged."""
        try:
            rows: list[dict[str, Any]] = await self.redis.xpending_range(
                keys.task_queue(kind), keys.TASK_GROUP, "-", "+", 10_000, consumername=node_id
            )
        except Exception as exc:
            if "NOGROUP" in str(exc):
                return []
            raise
        return [row["message_id"] for row in rows]

    # -- one dead node ---------------------------------------------------------------------------

    async def recover_node(self, node_id: str) -> bool:
        """Take back everything `node_id` held; True once nothing of it is left."""
        members: Any = await self.redis.smembers(keys.node_tasks(node_id))
        task_ids = dict.fromkeys(member.decode() for member in members)
        for kind in KINDS:
            queue = keys.task_queue(kind)
            for entry in await self._pending(kind, node_id):
                found: Any = await self.redis.xrange(queue, entry, entry)
                for _entry, fields in found:
                    task_ids[fields[b"id"].decode()] = None
        if task_ids:
            logger.warning(
                "node %s stopped without leaving: node %s takes back its %d task(s)",
                node_id,
                self.node.id,
                len(task_ids),
            )
        else:  # a node that left cleanly keeps its name in the queues' group till now
            logger.info("node %s is gone: its consumer in the queues' group is removed", node_id)
        settled = True
        for task_id in task_ids:
            settled = await self.recover_task(node_id, task_id) and settled
        if not settled:
            return False  # the next pass tries the rest; its set and consumer stay till then
        for kind in KINDS:
            queue = keys.task_queue(kind)
            # What is still pending for it names tasks handled above (entries replaced since).
            for entry in await self._pending(kind, node_id):
                await self.redis.xack(queue, keys.TASK_GROUP, entry)
                await self.redis.xdel(queue, entry)
            if await self._consumers(kind):
                with contextlib.suppress(Exception):  # NOGROUP: nothing to remove
                    await self.redis.xgroup_delconsumer(queue, keys.TASK_GROUP, node_id)
        await self.redis.delete(keys.node_tasks(node_id))
        return True

    async def recover_task(self, node_id: str, task_id: str) -> bool:
        """Take back one task of the dead node `node_id`; False if it kept changing."""
        for _ in range(TRIES):
            fields = cast("dict[bytes, bytes]", await self.redis.hgetall(keys.task(task_id)))
            owner = fields.get(b"owner", b"").decode()
            if not fields or owner not in ("", node_id):
                # Expired, or another node has it now: only its place in the set is stale.
                await self.redis.srem(keys.node_tasks(node_id), task_id)
                return True
            record = decode_record(fields[b"record"])
            change, requeue = self._decide(node_id, record, owner, fields[b"spec"])
            if record.stream_id is not None:
                end = change if change is not None and change.status.is_final else record
                await self._end_run(node_id, task_id, record.stream_id, end)
            reply = await self._recover(
                keys=[
                    keys.task(task_id),
                    keys.task_queue(record.kind),
                    keys.node_tasks(node_id),
                    keys.CHANGES,
                    keys.stream_owner(record.stream_id) if record.stream_id else b"-",
                ],
                args=[
                    task_id,
                    owner,
                    fields[b"record"],
                    encode_record(change) if change is not None else "",
                    change.status.value if change is not None else "",
                    "requeue" if requeue else "end",
                    RECORD_TTL * 1000,
                    self.node.id,
                    CHANGES_KEPT,
                    keys.TASK_GROUP,
                    "1" if record.stream_id is not None else "0",
                ],
            )
            if reply[0] == b"changed":
                continue
            if change is not None:
                logger.warning(
                    "task %s of node %s (stream %s): %s",
                    task_id,
                    node_id,
                    record.stream_id,
                    change.status.value,
                )
                # The changes stream carries it to every other node; this one keeps it now.
                self.tasks.apply(change)
            elif requeue:
                logger.warning("task %s of node %s: queued again", task_id, node_id)
            return True
        logger.error("task %s of node %s: kept changing; left for the next pass", task_id, node_id)
        return False

    @staticmethod
    def _decide(
        node_id: str, record: TaskRecord, owner: str, spec: bytes
    ) -> tuple[TaskRecord | None, bool]:
        """(the new record or None to keep it, whether it is queued again)."""
        if record.status.is_final:
            return None, False
        if record.status is TaskStatus.QUEUED or owner == "":
            return None, True  # not started (or waiting for its next attempt)
        reason = f"node {node_id} stopped while running it (no sign of life for {NODE_TTL:g} s)"
        attempts = max_attempts_of(spec)
        if record.attempt_count < attempts:
            error = f"attempt {record.attempt_count} of {attempts} cut short: {reason}"
            return record.replace(status=TaskStatus.QUEUED, error=error), True
        interrupted = record.replace(
            status=TaskStatus.INTERRUPTED, stopped=datetime.now(UTC), error=reason, result=None
        )
        return interrupted, False

    async def _end_run(self, node_id: str, task_id: str, stream_id: str, end: TaskRecord) -> None:
        """End the dead node's run of `stream_id` for every subscriber, if it is still open:
        with the task's end when it had one, else as interrupted."""
        meta = keys.stream_meta(stream_id)
        found: Any = await self.redis.hmget(meta, ["run", "epoch", "node", "state"])
        run, epoch, writer, state = found
        if run != task_id.encode() or writer != node_id.encode() or state != b"running":
            return  # ended already, or another run (or node) has the stream now
        final = end.status.value if end.status.is_final else TaskStatus.INTERRUPTED.value
        error = end.error if end.status.is_final else f"node {node_id} stopped while running it"
        await self._end_stream(
            keys=[meta, keys.stream_events(stream_id), keys.stream_live(stream_id)],
            args=[epoch, final, error or "", "", self._expiry],
        )

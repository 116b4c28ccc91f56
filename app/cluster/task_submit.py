"""The submitting of tasks to the cluster: from any node, into its kind's queue in Redis.

Submit puts the task's record and spec in its hash and its id in its kind's queue (a stream
read by one consumer group, each node a consumer), in one script (`task_scripts.SUBMIT`) that
also claims the task's stream id, so one run per stream id holds across the cluster. `submit`
returns at once and sends in the background, everything submitted in one turn of the loop in
one pipeline; `submit_confirmed` returns once Redis has the task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from taskcast.cluster import keys, task_scripts
from taskcast.cluster.task_codec import encode_record, encode_spec
from taskcast.cluster.task_scripts import CHANGES_KEPT, RECORD_TTL
from taskcast.errors import EngineUnavailableError, StreamBusyError, TaskcastError
from taskcast.records import TaskRecord, TaskStatus

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from taskcast.cluster.node import Node
    from taskcast.runtime.runner import Runner
    from taskcast.spec import TaskSpec

__all__ = ["Submitter"]

logger = logging.getLogger(__name__)

#: submits sent in one pipeline at most
SUBMIT_BATCH = 500


class Submitter:
    """This node's submits to the cluster, and those not yet sent to Redis."""

    def __init__(
        self,
        node: Node,
        runner: Runner,
        busy_streams: dict[str, str],
        ended: Callable[[TaskRecord], None],
        in_background: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self.node = node
        self.runner = runner
        self.redis: Redis = node.redis
        self._submit = self.redis.register_script(task_scripts.SUBMIT)
        #: the plane's stream ids held by unfinished tasks: checked and taken at submit
        self._busy_streams = busy_streams
        #: the plane's handling of an end, for a task Redis did not take
        self._ended = ended
        #: the plane's background tasks, ended at its close
        self._in_background = in_background
        #: tasks `submit` returned and not yet sent to Redis, in order
        self._unsent: list[tuple[TaskRecord, bytes]] = []
        #: their ids, and those of the pipeline on its way: known here before Redis has them
        self._sending: set[str] = set()

    def is_sending(self, task_id: str) -> bool:
        """Whether `submit` returned the task and Redis may not have it yet."""
        return task_id in self._sending

    def submit(self, spec: TaskSpec) -> str:
        """Submit from the loop's thread without waiting for Redis: the checks this node can
        make now raise at once; should Redis then refuse the task (its stream id taken
        elsewhere a moment ago, Redis lost), its record ends as failed, saying why."""
        record, payload = self._prepare(spec)
        self.runner.record_from_elsewhere(record)
        self._unsent.append((record, payload))
        self._sending.add(record.id)
        if len(self._unsent) == 1:
            # Everything submitted in this turn of the loop goes to Redis in one pipeline:
            # a view that starts 1,000 tasks makes one round trip, not 1,000 connections.
            self._in_background(self._send_unsent())
        return record.id

    async def submit_confirmed(self, spec: TaskSpec) -> str:
        """Submit and return once Redis has the task; StreamBusyError, EngineUnavailableError."""
        record, payload = self._prepare(spec)
        try:
            await self._send(record, payload)
        except TaskcastError:
            self._ended(record)
            raise
        self.runner.record_from_elsewhere(record)
        return record.id

    def _prepare(self, spec: TaskSpec) -> tuple[TaskRecord, bytes]:
        if not self.node.reachable:
            raise EngineUnavailableError(
                f"Redis cannot be reached ({self.node.last_error}): the task was not queued"
            )
        if spec.stream_id is not None:
            holder = self._busy_streams.get(spec.stream_id)
            if holder is not None:
                raise StreamBusyError(spec.stream_id, holder)
        payload = encode_spec(spec)
        record = spec.new_record(
            self.runner.new_task_id(), status=TaskStatus.QUEUED, enqueued=datetime.now(UTC)
        )
        if spec.stream_id is not None:
            self._busy_streams[spec.stream_id] = record.id
        return record, payload

    async def _send(self, record: TaskRecord, payload: bytes) -> None:
        stream_id = record.stream_id
        try:
            script_keys, script_args = self._submit_args(record, payload)
            done, detail = await self._submit(keys=script_keys, args=script_args)
        except Exception as exc:
            raise EngineUnavailableError(
                f"Redis did not take task {record.id} ({type(exc).__name__}: {exc}): "
                f"it was not queued"
            ) from exc
        if not done:
            assert stream_id is not None
            raise StreamBusyError(stream_id, detail.decode())

    def _submit_args(self, record: TaskRecord, payload: bytes) -> tuple[list[Any], list[Any]]:
        """The SUBMIT script's keys and arguments for one task."""
        stream_id = record.stream_id
        holder_key = keys.stream_owner(stream_id) if stream_id is not None else b"-"
        script_keys = [keys.task(record.id), keys.task_queue(record.kind), keys.CHANGES, holder_key]
        script_args = [
            record.id,
            encode_record(record),
            payload,
            RECORD_TTL * 1000,
            "1" if stream_id is not None else "0",
            self.node.id,
            CHANGES_KEPT,
        ]
        return script_keys, script_args

    async def _send_unsent(self) -> None:
        """Send what `submit` took since the last pipeline, in order, SUBMIT_BATCH at a time."""
        while self._unsent:
            batch = self._unsent[:SUBMIT_BATCH]
            del self._unsent[:SUBMIT_BATCH]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for record, payload in batch:
                        script_keys, script_args = self._submit_args(record, payload)
                        await self._submit(keys=script_keys, args=script_args, client=pipe)
                    replies = await pipe.execute(raise_on_error=False)
            except Exception as exc:
                replies = [exc] * len(batch)
            for (record, _payload), reply in zip(batch, replies, strict=True):
                self._sending.discard(record.id)
                if isinstance(reply, Exception):
                    self._fail(
                        record,
                        f"Redis did not take task {record.id} "
                        f"({type(reply).__name__}: {reply}): it was not queued",
                    )
                elif not reply[0]:
                    busy = StreamBusyError(record.stream_id or "", reply[1].decode())
                    self._fail(record, str(busy))

    def _fail(self, record: TaskRecord, error: str) -> None:
        """A task `submit` returned whose sending failed: its record ends as failed, saying why."""
        logger.error("task %s (node %s): %s", record.id, self.node.id, error)
        failed = record.replace(status=TaskStatus.FAILED, stopped=datetime.now(UTC), error=error)
        self.runner.record_from_elsewhere(failed)
        self._ended(failed)

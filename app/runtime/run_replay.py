"""Following one run of a stream, not whichever run the stream id names now; and bringing a
stream's ended run back into the hub from the store.

A stream id is reused by every run of a `@publish` task with the same publish id, and a plain
subscription follows the newest of them. A task's page wants its own run: while that run is
the stream's live or kept one it comes from the hub (replay, then live, with no gap); once a
later run has taken the stream id, or after a restart, it comes from the run's stored events.
A run whose stream the runner has not opened yet is waited for. A plain subscription to a
stream the hub has let go (its run ended, or ended before a restart) finds it as the store kept
it.

Nothing here is on the event hot path: it reads the hub's look-ups, the store, and record
changes (one wake-up per change of the followed task's record).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from taskcast.errors import UnknownTaskError
from taskcast.hub.hub import Hub, Item, Sink, Start, StreamEnd, StreamEvent, Subscription
from taskcast.records import TaskRecord
from taskcast.runtime.execution import short_error
from taskcast.store.store import Store

if TYPE_CHECKING:
    from taskcast.runtime.runner import Runner

__all__ = ["restore_ended_stream", "stored_run", "subscribe_run"]

logger = logging.getLogger(__name__)


def stored_run(
    record: TaskRecord, events: list[tuple[int, str]], after: int, max_pending: int
) -> Subscription:
    """A finished run as a subscription that the hub does not hold: start, its stored events
    after seq `after`, and its end with the record's final state."""
    assert record.stream_id is not None
    items: list[Item] = [Start(record.id)]
    items.extend(StreamEvent(seq, data) for seq, data in events if seq > after)
    last_seq = events[-1][0] if events else 0
    items.append(StreamEnd(record.status.value, short_error(record.error), last_seq))
    subscription = Subscription(record.stream_id, after, max_pending)
    subscription.replay(items)
    return subscription


async def restore_ended_stream(
    hub: Hub, store: Store, loop: asyncio.AbstractEventLoop, stream_id: str, on_cluster: bool
) -> None:
    """Bring the newest run of `stream_id`, a stream the hub no longer holds, back into the hub
    from the store if it has ended."""
    record = store.latest_run(stream_id)
    if record is not None and record.status.is_final:
        events = await loop.run_in_executor(None, store.events, record.id)
        # On the Redis engine a node stores the events of the runs it ran only: another
        # node's run (its record came from the cluster) is read from Redis by the hub.
        if events or not on_cluster:
            hub.restore(
                stream_id, record.id, events, record.status.value, short_error(record.error)
            )


async def subscribe_run(
    runner: Runner, task_id: str, after: int = 0, sink: Sink | None = None
) -> Subscription:
    """Replay run `task_id` of its stream after seq `after`, then follow it live if it is
    still going; waits (without a time limit) while the run has not opened its stream yet.

    UnknownTaskError when there is no such task, or it has no stream."""
    changed = asyncio.Event()
    loop = runner.loop

    def listener(record: TaskRecord) -> None:
        if record.id == task_id:
            # Called inside the change, before the runner opens the run's stream: look
            # again once the runner's step is over.
            loop.call_soon(changed.set)

    runner.add_listener(listener)
    try:
        while True:
            record = runner.get(task_id)
            if record is None or record.stream_id is None:
                raise UnknownTaskError(f"no task with a stream and id {task_id!r}")
            stream = runner.hub.get(record.stream_id)
            if stream is not None and stream.run_id == task_id:
                return runner.hub.subscribe(record.stream_id, after, sink)
            if record.status.is_final:
                events = await loop.run_in_executor(None, runner.store.events, task_id)
                return stored_run(record, events, after, runner.settings.subscriber_max_pending)
            # Its stream is not open yet (the previous run's may still be kept): wait for it.
            changed.clear()
            await changed.wait()
    finally:
        runner.remove_listener(listener)

"""The console's live feed: a websocket that pushes each change of a task's record.

A page lists tasks; this keeps the list and its running and queued counters current without
reloads (each frame carries the counters as they are when it is sent). Each change is encoded once,
as the list's summary of the record (no arguments, result or output), however many consoles
hear of it. Per socket the feed keeps only the latest summary of each changed task, so a burst
of changes costs one frame per task, and a socket that falls behind by more than `MAX_PENDING`
tasks or `MAX_PENDING_BYTES` of summaries is told to reload instead of being queued without end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import WSCloseCode, web

from taskcast.records import TaskRecord
from taskcast.web.errors import json_error
from taskcast.web.keys import FEED, RUNNER, SETTINGS, SOCKETS
from taskcast.web.security import origin_allowed, user_of

logger = logging.getLogger(__name__)

#: changed tasks one console socket may have waiting before it is told to reload
MAX_PENDING = 1000
#: bytes of waiting summaries one console socket may have before it is told to reload
MAX_PENDING_BYTES = 1024 * 1024


class FeedSubscriber:
    """One console socket: the latest summary of each task changed since its last send."""

    def __init__(self, user: str | None) -> None:
        self.user = user
        self.pending: dict[str, str] = {}  # task id -> its summary as JSON text
        self.pending_bytes = 0
        self.overflowed = False
        self.ready = asyncio.Event()

    def take(self) -> list[str]:
        """The waiting summaries, now no longer waiting."""
        summaries, self.pending, self.pending_bytes = list(self.pending.values()), {}, 0
        return summaries


class Feed:
    """Hands every record change to the console sockets allowed to see it."""

    def __init__(
        self,
        can_see: Callable[[str | None, TaskRecord], bool],
        summarize: Callable[[TaskRecord], str],
    ) -> None:
        self._subscribers: set[FeedSubscriber] = set()
        self._can_see = can_see
        self._summarize = summarize

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, record: TaskRecord) -> None:
        summary: str | None = None
        for subscriber in self._subscribers:
            if subscriber.overflowed or not self._can_see(subscriber.user, record):
                continue
            if summary is None:
                summary = self._summarize(record)
            previous = subscriber.pending.get(record.id)
            subscriber.pending[record.id] = summary
            subscriber.pending_bytes += len(summary) - (len(previous) if previous else 0)
            if (
                len(subscriber.pending) > MAX_PENDING
                or subscriber.pending_bytes > MAX_PENDING_BYTES
            ):
                # Let go of what it held now; the sender tells the page to reload.
                logger.info(
                    "feed: a console fell %d tasks (%d bytes) behind and is told to reload",
                    len(subscriber.pending),
                    subscriber.pending_bytes,
                )
                subscriber.overflowed = True
                subscriber.take()
            subscriber.ready.set()

    def add(self, subscriber: FeedSubscriber) -> None:
        self._subscribers.add(subscriber)

    def discard(self, subscriber: FeedSubscriber) -> None:
        self._subscribers.discard(subscriber)


async def feed_socket(request: web.Request) -> web.StreamResponse:
    if not origin_allowed(request):
        return json_error(403, "forbidden", "cross-origin websocket refused")
    ws = web.WebSocketResponse(heartbeat=request.app[SETTINGS].channel_heartbeat, max_msg_size=1024)
    await ws.prepare(request)
    feed, sockets = request.app[FEED], request.app[SOCKETS]
    subscriber = FeedSubscriber(user_of(request))
    feed.add(subscriber)
    sockets.add(ws)
    runner = request.app[RUNNER]
    sender = asyncio.create_task(
        _send(ws, subscriber, lambda: (runner.running_count, runner.queue_size))
    )
    try:
        async for _message in ws:
            pass  # the feed only speaks; anything a page sends is ignored
    finally:
        feed.discard(subscriber)
        sockets.discard(ws)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return ws


async def _send(
    ws: web.WebSocketResponse, subscriber: FeedSubscriber, counts: Callable[[], tuple[int, int]]
) -> None:
    while True:
        await subscriber.ready.wait()
        subscriber.ready.clear()
        if subscriber.overflowed:
            await ws.send_str('{"reload":true}')
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too far behind: reload")
            return
        running, queued = counts()  # the list's counters change with the records
        await ws.send_str(
            '{"tasks":[' + ",".join(subscriber.take()) + "],"
            f'"counts":{{"running":{running},"queued":{queued}}}}}'
        )

"""The console's live feed: a websocket that pushes each change of a task's record.

A page lists tasks; this keeps the list current without reloads. Per socket it keeps only the
latest record of each changed task, so a burst of changes costs one frame per task, and a socket
that falls far behind is told to reload instead of being queued without end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from aiohttp import WSCloseCode, web
from taskcast.records import TaskRecord
from taskcast.web.errors import json_error
from taskcast.web.jsonview import record_json
from taskcast.web.keys import FEED, SETTINGS, SOCKETS
from taskcast.web.security import origin_allowed, user_of

logger = logging.getLogger(__name__)

MAX_PENDING = 1000


class FeedSubscriber:
    """One console socket: the latest record of each task changed since its last send."""

    def __init__(self, user: str | None) -> None:
        self.user = user
        self.pending: dict[str, TaskRecord] = {}
        self.overflowed = False
        self.ready = asyncio.Event()


class Feed:
    """Hands every record change to the console sockets allowed to see it."""

    def __init__(self, can_see: Callable[[str | None, TaskRecord], bool]) -> None:
        self._subscribers: set[FeedSubscriber] = set()
        self._can_see = can_see

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, record: TaskRecord) -> None:
        for subscriber in self._subscribers:
            if not self._can_see(subscriber.user, record):
                continue
            if record.id not in subscriber.pending and len(subscriber.pending) >= MAX_PENDING:
                subscriber.overflowed = True
            subscriber.pending[record.id] = record
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
    sender = asyncio.create_task(_send(ws, subscriber, request))
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
    ws: web.WebSocketResponse, subscriber: FeedSubscriber, request: web.Request
) -> None:
    while True:
        await subscriber.ready.wait()
        subscriber.ready.clear()
        if subscriber.overflowed:
            await ws.send_str('{"reload":true}')
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too far behind: reload")
            return
        records, subscriber.pending = list(subscriber.pending.values()), {}
        payload = [record_json(record, request, detail=False) for record in records]
        await ws.send_str(json.dumps({"tasks": payload}))

"""The subscriber's side of the event plane: streams run on other nodes, copied into this
node's hub while someone here follows them.

One pub/sub connection per node. To follow a stream the mirror subscribes to its channel
FIRST (and waits for Redis to confirm), then reads the meta and the events from Redis and
applies them; messages that arrive meanwhile wait, and are applied after, skipping the seqs
already applied. A message that does not follow on (a jump in seq, another epoch, an end after
events not seen) makes it read Redis again from its last seq. After a lost connection every
followed stream is read again. Applying goes into the local hub, so local fan-out, the write
window and sinks work as for a stream run here. A stream stops being followed at its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

from taskcast.cluster import keys
from taskcast.cluster.connection import BACKOFF_CAP, BACKOFF_FIRST
from taskcast.cluster.stream_ops import Appended, Ended, Message, Opened, parse_message

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

    from taskcast.cluster.cluster_hub import ClusterHub

logger = logging.getLogger(__name__)

#: seconds to wait for Redis to confirm a channel subscription before reading anyway
SUBSCRIBE_TIMEOUT = 5.0


class Follow:
    """One followed stream: what has been applied from Redis, and messages waiting for a read."""

    __slots__ = ("applied", "buffer", "epoch", "run_id", "stream_id", "subscribed", "syncing")

    def __init__(self, stream_id: str, subscribed: asyncio.Future[None]) -> None:
        self.stream_id = stream_id
        self.run_id: str | None = None
        self.epoch: str | None = None
        self.applied = 0  # the last seq applied to the hub
        #: messages that came while Redis was being read (None: apply them as they come)
        self.buffer: list[Message] | None = []
        self.syncing = True
        self.subscribed = subscribed


class Mirror:
    """The streams this node follows without running them (see the module)."""

    def __init__(self, hub: ClusterHub, redis: Redis, node_id: str) -> None:
        self._hub = hub
        self._redis = redis
        self._node_id = node_id
        self._pubsub: PubSub = redis.pubsub()
        self._follows: dict[str, Follow] = {}
        self._channels: dict[bytes, Follow] = {}
        self._ready = asyncio.Event()  # the pub/sub connection has a subscription to read
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        #: called with a stream id once it is read from Redis (subscribers waiting on it attach)
        self.on_synced: Callable[[str], None] = lambda stream_id: None

    def following(self, stream_id: str) -> Follow | None:
        return self._follows.get(stream_id)

    def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(
            self._read_forever(), name=f"taskcast mirror {self._node_id}"
        )

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._reader] if self._reader else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._pubsub.aclose()
        except Exception as exc:  # Redis gone: nothing to unsubscribe from
            logger.info("mirror: pub/sub closed without Redis: %s", exc)

    def follow(self, stream_id: str) -> Follow:
        """Start following `stream_id` (at once; reading Redis goes on in a task)."""
        follow = self._follows.get(stream_id)
        if follow is None:
            subscribed = asyncio.get_running_loop().create_future()
            follow = self._follows[stream_id] = Follow(stream_id, subscribed)
            self._channels[keys.stream_live(stream_id)] = follow
            self._spawn(self._begin(follow))
        return follow

    def stop(self, stream_id: str) -> None:
        """Stop following (its end was applied, or it runs here now)."""
        follow = self._follows.pop(stream_id, None)
        if follow is None:
            return
        channel = keys.stream_live(stream_id)
        self._channels.pop(channel, None)
        self._spawn(self._unsubscribe(channel))

    def _spawn(self, coroutine: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unsubscribe(self, channel: bytes) -> None:
        try:
            await self._pubsub.unsubscribe(channel)
        except Exception as exc:  # a reconnect subscribes only to the channels still followed
            logger.info("mirror: could not unsubscribe from %r: %s", channel, exc)

    async def _begin(self, follow: Follow) -> None:
        # A channel is subscribed again after a reconnect only once this succeeded.
        channel = keys.stream_live(follow.stream_id)
        await self._retrying(follow, "follow", lambda: self._pubsub.subscribe(channel))
        self._ready.set()
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                await follow.subscribed
        except TimeoutError:
            logger.warning("mirror: Redis did not confirm the channel of %r", follow.stream_id)
        await self._sync(follow)

    async def _retrying(
        self, follow: Follow, doing: str, attempt: Callable[[], Awaitable[object]]
    ) -> None:
        """`attempt` until it succeeds, with backoff, while the stream is still followed."""
        pause = BACKOFF_FIRST
        while self._follows.get(follow.stream_id) is follow:
            try:
                await attempt()
                return
            except Exception as exc:
                logger.error(
                    "mirror: cannot %s stream %r (retrying): %s", doing, follow.stream_id, exc
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF_CAP)

    # -- reading Redis -------------------------------------------------------------------------

    async def _sync(self, follow: Follow) -> None:
        """Read the stream from Redis after what was applied, then apply what waited."""
        follow.syncing = True
        if follow.buffer is None:
            follow.buffer = []
        await self._retrying(follow, "read", lambda: self._read(follow))
        waiting, follow.buffer = follow.buffer or [], None
        follow.syncing = False
        self.on_synced(follow.stream_id)
        for message in waiting:
            if follow.syncing or self._follows.get(follow.stream_id) is not follow:
                break  # a message asked for another read: it reads past these too
            self._handle(follow, message)

    async def _read(self, follow: Follow) -> None:
        meta_raw = cast(
            "dict[bytes, bytes]", await self._redis.hgetall(keys.stream_meta(follow.stream_id))
        )
        meta = {key.decode(): value.decode() for key, value in meta_raw.items()}
        hub, stream_id = self._hub, follow.stream_id
        if not meta:
            follow.epoch = None  # nothing in Redis: a start will come on the channel
            return
        run_id, epoch = meta["run"], meta["epoch"]
        copy = hub.get(stream_id)
        # An ended copy under another epoch is another copy of the run: its next attempt, on
        # another node after the one running it died (or the end, written again whole).
        replaced = copy is not None and copy.end is not None and copy.epoch != epoch
        if copy is None or copy.run_id != run_id or replaced:
            if copy is not None and copy.end is None:
                logger.warning(
                    "mirror: stream %r: run %s replaced by run %s before its end was seen",
                    stream_id,
                    copy.run_id,
                    run_id,
                )
                hub.mirror_close(stream_id, "interrupted", None)
            hub.forget(stream_id)
            hub.mirror_open(stream_id, run_id, epoch)
            follow.applied = 0
        elif copy.end is None:
            copy.epoch = epoch
            follow.applied = copy.last_seq
        else:  # this run's end is here already
            copy.epoch = epoch
            follow.run_id, follow.epoch, follow.applied = run_id, epoch, copy.last_seq
            self.stop(stream_id)
            return
        follow.run_id, follow.epoch = run_id, epoch
        entries = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await self._redis.xrange(
                keys.stream_events(stream_id), min=f"{follow.applied + 1}-0", max="+"
            ),
        )
        events = [
            (int(entry_id.split(b"-", 1)[0]), fields[b"d"].decode()) for entry_id, fields in entries
        ]
        self._apply(follow, events)
        if meta["state"] != "running" and hub.get(stream_id) is not None:
            hub.mirror_close(stream_id, meta["state"], meta.get("error") or None)
            self.stop(stream_id)

    def _apply(self, follow: Follow, events: list[tuple[int, str]]) -> None:
        fresh = [(seq, text) for seq, text in events if seq > follow.applied]
        run: list[str] = []
        first = 0
        for seq, text in fresh:
            if run and first + len(run) != seq:
                self._hub.mirror_events(follow.stream_id, first, run)
                run = []
            if not run:
                first = seq
            run.append(text)
        if run:
            self._hub.mirror_events(follow.stream_id, first, run)
        if fresh:
            follow.applied = fresh[-1][0]

    # -- the channel ---------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        pause = BACKOFF_FIRST
        lost = False
        while True:
            await self._ready.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    logger.error("mirror: lost the pub/sub connection to Redis: %s", exc)
                lost = True
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF_CAP)
                continue
            if lost:
                # Reconnected (and subscribed again): what was published meanwhile is lost.
                lost, pause = False, BACKOFF_FIRST
                logger.warning(
                    "mirror: pub/sub reconnected; reading %d stream(s) again", len(self._follows)
                )
                for follow in list(self._follows.values()):
                    if not follow.syncing:
                        self._spawn(self._sync(follow))
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, object]) -> None:
        channel = message.get("channel")
        follow = self._channels.get(channel) if isinstance(channel, bytes) else None
        if follow is None:
            return
        if message.get("type") == b"subscribe" or message.get("type") == "subscribe":
            if not follow.subscribed.done():
                follow.subscribed.set_result(None)
            return
        data = message.get("data")
        if message.get("type") not in ("message", b"message") or not isinstance(data, bytes):
            return
        try:
            parsed = parse_message(data)
        except ValueError as exc:
            logger.error("mirror: stream %r: %s", follow.stream_id, exc)
            return
        if follow.buffer is not None:
            follow.buffer.append(parsed)
        else:
            self._handle(follow, parsed)

    def _handle(self, follow: Follow, message: Message) -> None:
        """Apply a message that follows on; read Redis again for one that does not."""
        if isinstance(message, Opened):
            if message.epoch != follow.epoch:
                self._resync(follow)
            return
        if message.epoch != follow.epoch:
            self._resync(follow)
            return
        if isinstance(message, Appended):
            if message.first_seq > follow.applied + 1:
                self._resync(follow)
                return
            pairs = list(enumerate(message.texts, message.first_seq))
            self._apply(follow, pairs)
        elif isinstance(message, Ended):
            if message.last_seq > follow.applied:
                self._resync(follow)
                return
            self._hub.mirror_close(follow.stream_id, message.state, message.error)
            self.stop(follow.stream_id)

    def _resync(self, follow: Follow) -> None:
        if not follow.syncing:
            follow.syncing = True
            follow.buffer = []
            self._spawn(self._sync(follow))

"""The broadcast hub: streams keyed by stream id, who follows them, and the engine's surface.

Plain asyncio, one event loop, no locks. `publish` records an event in the stream's history and
hands it to every live subscriber in the same synchronous step, and `subscribe` takes the history
snapshot and registers the subscriber in the same step, so a subscriber sees replay then live
events with no gap and no duplicate. `publish` never awaits: a subscriber that falls more than
`max_pending` items behind is cut off (`SubscriberTooSlow`) and may resume after its last seq.

A subscriber whose consumer is idle gets events written straight to its connection through its
`Sink`; events that follow each other closely are held for a moment and written together. How a
publish reaches each subscriber is the fan-out's (`fanout.py`).

The hub knows no wire protocol: it hands out `Start`, `StreamEvent` and `StreamEnd` objects, and
each event is one object shared by all its subscribers, so a wire layer encodes it once.

The public methods below (`open`, `publish`, `publish_many`, `close`, `restore`, `subscribe`,
`unsubscribe`, `shutdown`, and the look-ups `get`, `in`, `len`, `iter`, `subscriber_count`) are
the whole surface the runner and the web layer use: another engine (one that fans out across
processes, say) provides the same methods with the same guarantees.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator
from typing import Any

from taskcast.hub.fanout import FanOut
from taskcast.hub.sink import Sink, SubscriberTooSlow
from taskcast.hub.stream import Item, Start, Stream, StreamEnd, StreamEvent
from taskcast.hub.subscription import Subscription
from taskcast.settings import Settings

# The types of the hub's signatures, so that a caller of the hub imports from one place.
__all__ = [
    "Hub",
    "Item",
    "Sink",
    "Start",
    "Stream",
    "StreamEnd",
    "StreamEvent",
    "SubscriberTooSlow",
    "Subscription",
]

logger = logging.getLogger(__name__)


def hub_options(settings: Settings) -> dict[str, Any]:
    """The hub's keyword arguments as the settings give them (every engine's hub takes them)."""
    return {
        "max_events": settings.history_max_events,
        "max_bytes": settings.history_max_bytes,
        "keep_head": settings.history_keep_head,
        "kept_streams": settings.kept_streams,
        "max_pending": settings.subscriber_max_pending,
        "max_pending_bytes": settings.subscriber_max_bytes,
        "write_window": settings.write_window,
    }


class Hub:
    """All streams of this process, keyed by stream id; finished ones kept up to `kept_streams`."""

    def __init__(
        self,
        *,
        max_events: int = 10_000,
        max_bytes: int = 8 * 1024 * 1024,
        keep_head: int = 20,
        kept_streams: int = 500,
        max_pending: int = 10_000,
        max_pending_bytes: int = 16 * 1024 * 1024,
        write_window: float = 0.0005,
    ) -> None:
        self._limits = {"keep_head": keep_head, "max_events": max_events, "max_bytes": max_bytes}
        self._kept_streams = kept_streams
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._streams: dict[str, Stream] = {}
        self._fanout = FanOut(self._streams, write_window, self._cut_off)
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._waiting: dict[str, set[Subscription]] = {}
        # Subscribers following a stream or waiting for one, counted as they come and go: the
        # health check asks for it, and summing over 10,000 streams took it about a millisecond.
        self._subscribed = 0

    # -- look-ups ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._streams

    def __iter__(self) -> Iterator[Stream]:
        return iter(list(self._streams.values()))

    def get(self, stream_id: str) -> Stream | None:
        return self._streams.get(stream_id)

    @property
    def subscriber_count(self) -> int:
        return self._subscribed

    # -- the publisher's side ----------------------------------------------------------------------

    def open(self, stream_id: str, run_id: str, epoch: str | None = None) -> Stream:
        """Start a fresh run of `stream_id`; subscribers waiting for it receive `start`
        (`epoch`: the Redis engine's, named in `start`)."""
        previous = self._streams.get(stream_id)
        if previous is not None and previous.is_open:
            raise RuntimeError(f"stream {stream_id!r} is still open (run {previous.run_id})")
        self._finished.pop(stream_id, None)
        stream = Stream(stream_id, run_id, **self._limits)
        stream.epoch = epoch
        self._streams[stream_id] = stream
        start = Start(run_id, epoch)
        for subscription in self._waiting.pop(stream_id, ()):
            subscription.replay([start])
            stream.follow(subscription)
        return stream

    def publish(self, stream_id: str, data_json: str) -> StreamEvent:
        """Record one event and hand it to every subscriber; never awaits."""
        stream = self._open_stream(stream_id)
        stream.last_seq += 1
        event = StreamEvent(stream.last_seq, data_json)
        stream.record(event.seq, data_json)
        self._fanout.deliver(stream, [event])
        return event

    def publish_many(self, stream_id: str, data: list[str]) -> int:
        """Record consecutive events (a burst that arrived together) and hand them to every
        subscriber in one step; the seq of the first. Never awaits."""
        if len(data) == 1:  # a worker's events a millisecond apart come one by one
            # This class's publish, not an override: an engine that overrides both (to pass
            # events on, say) must not see a burst of one as two publishes.
            return Hub.publish(self, stream_id, data[0]).seq
        stream = self._open_stream(stream_id)
        first_seq = stream.last_seq + 1
        events = [StreamEvent(seq, data_json) for seq, data_json in enumerate(data, first_seq)]
        for seq, data_json in enumerate(data, first_seq):
            stream.record(seq, data_json)
        stream.last_seq += len(events)
        if events:
            self._fanout.deliver(stream, events)
        return first_seq

    def close(self, stream_id: str, state: str, error: str | None = None) -> StreamEnd | None:
        """End the open run of `stream_id`: subscribers receive the end and are released."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.end is not None:
            return None
        for subscription in self._fanout.write_direct_held(stream):
            self._cut_off(stream, subscription)
        stream.end = StreamEnd(state, error, stream.last_seq)
        for subscription in list(stream.subscribers):
            # The held events go before the end.
            if subscription.held is not None and not subscription.write_held():
                self._cut_off(stream, subscription)
        for subscription in stream.subscribers:
            # The end always gets in, even behind a full queue: it is one small item, and a
            # subscriber that is merely slow must still learn that the stream is over.
            subscription.replay([stream.end])
        self._subscribed -= stream.unfollow_all()
        self._remember_finished(stream_id)
        return stream.end

    def restore(
        self,
        stream_id: str,
        run_id: str,
        events: list[tuple[int, str]],
        state: str,
        error: str | None = None,
    ) -> Stream:
        """Bring a finished run back from the store, unless a run of that id is already here."""
        current = self._streams.get(stream_id)
        if current is not None:
            return current
        stream = Stream(stream_id, run_id, **self._limits)
        for seq, data_json in events:
            stream.last_seq = seq
            stream.record(seq, data_json)
        stream.end = StreamEnd(state, error, stream.last_seq)
        self._streams[stream_id] = stream
        self._remember_finished(stream_id)
        return stream

    # -- the subscriber's side ---------------------------------------------------------------------

    def subscribe(
        self,
        stream_id: str,
        after: int = 0,
        sink: Sink | None = None,
        epoch: str | None = None,
    ) -> Subscription:
        """Replay what `stream_id` has after seq `after`, then follow it live.

        An id with no run yet gets nothing until its run opens. With a `sink`, events are
        written through it while the subscriber's consumer is idle, and the sink learns when
        the subscriber is cut off; without one, everything goes through `next_batch`.
        `epoch` is the Redis engine's (a resume from another epoch replays from the start);
        this engine has none and ignores it.
        """
        subscription = self.new_subscription(stream_id, after, sink)
        self.attach(subscription)
        return subscription

    def new_subscription(self, stream_id: str, after: int, sink: Sink | None) -> Subscription:
        """A subscriber of `stream_id`, not attached yet (`attach` does)."""
        return Subscription(stream_id, after, self._max_pending, sink, self._max_pending_bytes)

    def attach(self, subscription: Subscription) -> None:
        """Replay the stream's history after the subscriber's `after` and follow it live, or
        wait for its run to open."""
        stream_id = subscription.stream_id
        after = subscription.after
        stream = self._streams.get(stream_id)
        if stream is None:
            waiting = self._waiting.setdefault(stream_id, set())
            if subscription not in waiting:
                waiting.add(subscription)
                self._subscribed += 1
            return
        items: list[Item] = [Start(stream.run_id, stream.epoch)]
        items.extend(stream.history(after))
        if stream.end is not None:
            items.append(stream.end)
        elif stream.follow(subscription):
            self._subscribed += 1
        subscription.replay(items)

    def forget(self, stream_id: str) -> None:
        """Drop a finished stream's copy (the Redis engine replaces a stale mirror with this)."""
        stream = self._streams.get(stream_id)
        if stream is not None and stream.end is not None:
            del self._streams[stream_id]
            self._finished.pop(stream_id, None)

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop following: nothing more is delivered, and `next_batch` ends."""
        stream = self._streams.get(subscription.stream_id)
        if stream is not None and stream.unfollow(subscription):
            self._subscribed -= 1
        waiting = self._waiting.get(subscription.stream_id)
        if waiting is not None:
            if subscription in waiting:
                waiting.remove(subscription)
                self._subscribed -= 1
            if not waiting:
                del self._waiting[subscription.stream_id]
        subscription.finish()

    def shutdown(self) -> None:
        """Release every subscriber (their `next_batch` returns [])."""
        self.write_held()
        for stream in self._streams.values():
            for subscription in stream.subscribers:
                subscription.finish()
            stream.unfollow_all()
        for waiting in self._waiting.values():
            for subscription in waiting:
                subscription.finish()
        self._waiting.clear()
        self._subscribed = 0

    # -- upkeep ------------------------------------------------------------------------------------

    def _open_stream(self, stream_id: str) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.end is not None:
            raise RuntimeError(f"stream {stream_id!r} is not open")
        return stream

    def write_held(self) -> None:
        """Write every subscriber's held events now, each subscriber's in one write."""
        self._fanout.write_held()

    def _cut_off(self, stream: Stream, subscription: Subscription) -> None:
        if stream.unfollow(subscription):
            self._subscribed -= 1
        subscription.cut_off()
        logger.warning(
            "hub: a subscriber of %r fell %d events or %d bytes behind and was cut off "
            "(resume after %d)",
            stream.id,
            subscription.max_pending,
            subscription.max_pending_bytes,
            subscription.delivered_seq,
        )

    def _remember_finished(self, stream_id: str) -> None:
        self._finished[stream_id] = None
        self._finished.move_to_end(stream_id)
        while len(self._finished) > self._kept_streams:
            evicted, _ = self._finished.popitem(last=False)
            self._streams.pop(evicted, None)

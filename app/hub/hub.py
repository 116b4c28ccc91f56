"""The broadcast hub: streams keyed by stream id, their fan-out to subscribers, and the write window.

Plain asyncio, one event loop, no locks. `publish` records an event in the stream's history and
hands it to every live subscriber in the same synchronous step, and `subscribe` takes the history
snapshot and registers the subscriber in the same step, so a subscriber sees replay then live
events with no gap and no duplicate. `publish` never awaits: a subscriber that falls more than
`max_pending` items behind is cut off (`SubscriberTooSlow`) and may resume after its last seq.

A subscriber whose consumer is idle gets events written straight to its connection through its
`Sink`. Idle subscribers keep themselves in their stream's direct table, one table per kind of
sink, and a publish hands each table to its kind's `write_each`: a kind that writes the whole
table in one pass (the channel's sockets) costs no call per subscriber.

An event published within `write_window` seconds of the previous one on its stream is held,
and written with the ones after it: as soon as nothing more has been published for two
turns of the loop, or, while events keep coming, when the window ends. That is one write per
subscriber for a burst instead of one per event. An event that comes alone is written at once.
When a writing pass finds that only one publish was held (events a millisecond apart on a wide
fan-out can each follow the previous one's writing within the window, and still come one by
one), holding pauses on that stream for `LONE_HOLD_PAUSE`: holding them saved no write and cost
a second pass over the subscribers.

The hub knows no wire protocol: it hands out `Start`, `StreamEvent` and `StreamEnd` objects, and
each event is one object shared by all its subscribers, so a wire layer encodes it once.

The public methods below (`open`, `publish`, `publish_many`, `close`, `restore`, `subscribe`,
`unsubscribe`, `shutdown`, and the look-ups `get`, `in`, `len`, `iter`, `subscriber_count`) are
the whole surface the runner and the web layer use: another engine (one that fans out across
processes, say) provides the same methods with the same guarantees.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from taskcast.hub.stream import Item, Start, Stream, StreamEnd, StreamEvent
from taskcast.hub.subscription import (
    HOLDING,
    MAX_HELD,
    MAX_HELD_BYTES,
    TOO_SLOW,
    Sink,
    SubscriberTooSlow,
    Subscription,
    data_size,
)
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

#: seconds a stream's events are written at once after a writing pass of its held events found
#: a single publish among them
LONE_HOLD_PAUSE = 0.05


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
        self._write_window = write_window
        self._holding: list[Subscription] = []  # subscribers with held events
        self._write_timer: asyncio.Handle | None = None  # writes the held events
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # the loop of that timer
        self._deliveries = 0  # publishes so far: tells whether a burst is still going on
        self._held_bytes = 0  # event data published since subscribers began holding
        self._streams: dict[str, Stream] = {}
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
        self._deliver(stream, [event])
        return event

    def publish_many(self, stream_id: str, data: list[str]) -> int:
        """Record consecutive events (a burst that arrived together) and hand them to every
        subscriber in one step; the seq of the first. Never awaits."""
        stream = self._open_stream(stream_id)
        first_seq = stream.last_seq + 1
        events = [StreamEvent(seq, data_json) for seq, data_json in enumerate(data, first_seq)]
        for seq, data_json in enumerate(data, first_seq):
            stream.record(seq, data_json)
        stream.last_seq += len(events)
        if events:
            self._deliver(stream, events)
        return first_seq

    def close(self, stream_id: str, state: str, error: str | None = None) -> StreamEnd | None:
        """End the open run of `stream_id`: subscribers receive the end and are released."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.end is not None:
            return None
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

    # -- fan-out -----------------------------------------------------------------------------------

    def _open_stream(self, stream_id: str) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.end is not None:
            raise RuntimeError(f"stream {stream_id!r} is not open")
        return stream

    def _deliver(self, stream: Stream, events: list[StreamEvent]) -> None:
        """Hand new consecutive events to each subscriber: held, written, or queued."""
        self._deliveries += 1
        began = time.monotonic()
        hold = began - stream.busy_until < self._write_window and began >= stream.hold_after
        first_seq, last_seq = events[0].seq, events[-1].seq
        too_slow: list[Subscription] = []
        holding = False
        refused: Sequence[Subscription] = ()
        written = 0  # subscribers handled by the direct writes
        if not hold and stream.direct:
            # The commonest case, once per subscriber per event: its idle subscribers, written
            # to by their kind of sink in one pass (they keep themselves in these tables).
            for write_each, table in stream.direct.items():
                if table:
                    written += len(table)
                    refused_here = write_each(table, events)
                    if refused_here:
                        refused = [*refused, *refused_here] if refused else refused_here
            for sub in refused:  # the connection cannot take them now: they queue
                sub.refused()
                if not sub.push_all(events):
                    too_slow.append(sub)
            stream.direct_seq = last_seq
        for sub in stream.subscribers if len(stream.subscribers) > written else ():
            if written and (sub.direct or sub in refused):
                continue  # written above
            held = sub.held
            if held is not None and sub.after < first_seq:
                # Behind the held ones, in the same write (the other common case).
                held += events
                holding = True
                if len(held) >= MAX_HELD and not sub.write_held():
                    too_slow.append(sub)
                continue
            outcome = sub.offer(events, hold)
            if outcome == HOLDING:
                holding = True
                self._start_holding(sub)
            elif outcome == TOO_SLOW:
                too_slow.append(sub)
        if holding:
            stream.held_publishes += 1
        if self._holding:
            # Held events are shared with the history, but a dropped one stays alive while it
            # is held: past MAX_HELD_BYTES of them, every subscriber's are written now.
            self._held_bytes += data_size(events)
            if self._held_bytes >= MAX_HELD_BYTES:
                self.write_held()
        # The next event is held if it follows this one within a window. When writing this one
        # took a window or more, the window counts from the end instead, so that a large
        # fan-out keeps batching: writing each event alone is what takes the time there.
        ended = time.monotonic()
        stream.busy_until = ended if ended - began >= self._write_window else began
        for subscription in too_slow:
            self._cut_off(stream, subscription)

    def _start_holding(self, sub: Subscription) -> None:
        self._holding.append(sub)
        if self._write_timer is None:
            loop = self._timer_loop = asyncio.get_running_loop()
            deadline = loop.time() + self._write_window
            self._write_timer = loop.call_soon(self._watch_burst, None, deadline)

    def _watch_burst(self, seen: int | None, deadline: float) -> None:
        """Write the held events once their burst is over, else at the end of the write window.

        It runs on the next turn of the loop, notes how many publishes there have been, and
        looks again one turn later: a task that sends an event each turn runs in between.
        """
        loop = self._timer_loop
        assert loop is not None
        if seen is None:
            self._write_timer = loop.call_soon(self._watch_burst, self._deliveries, deadline)
        elif self._deliveries != seen:  # still coming
            self._write_timer = loop.call_at(deadline, self.write_held)
        else:
            self.write_held()

    def write_held(self) -> None:
        """Write every subscriber's held events now, each subscriber's in one write (called when
        their burst is over, or at the end of the write window)."""
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        holding, self._holding = self._holding, []
        self._held_bytes = 0
        began = time.monotonic()
        written: set[Stream] = set()
        for sub in holding:
            stream = self._streams.get(sub.stream_id)
            if stream is not None:
                written.add(stream)
            if not sub.write_held() and stream is not None:
                self._cut_off(stream, sub)
        ended = time.monotonic()
        took_a_window = ended - began >= self._write_window
        for stream in written:
            if took_a_window:
                # Writing to many subscribers took longer than a window: the next events would
                # otherwise each be written alone, and writing them is what takes the time.
                stream.busy_until = ended
            if stream.held_publishes < 2:
                stream.hold_after = ended + LONE_HOLD_PAUSE
            stream.held_publishes = 0

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

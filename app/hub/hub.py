"""The broadcast hub: streams keyed by stream id, their bounded history, and subscriber queues.

Plain asyncio, one event loop, no locks. `publish` records an event in the stream's history and
hands it to every live subscriber in the same synchronous step, and `subscribe` takes the history
snapshot and registers the subscriber in the same step, so a subscriber sees replay then live
events with no gap and no duplicate. `publish` never awaits: a subscriber that falls more than
`max_pending` items behind is cut off (`SubscriberTooSlow`) and may resume after its last seq.

A subscriber whose consumer is idle gets each event's frame written straight to its connection
(`Subscription.direct`). An event published within `write_window` seconds of the previous one on
its stream is held, and written with the ones after it: as soon as nothing more has been
published for two turns of the loop, or, while events keep coming, when the window ends. That is
one write per subscriber for a burst instead of one per event. An event that comes alone is
written at once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Final

from taskcast.web.wire import text_frame

logger = logging.getLogger(__name__)

START_FRAME: Final = '{"status":"start"}'
#: a subscriber's held events are written before the window ends once there are this many
MAX_HELD: Final = 256


class StreamEvent:
    """One published event: its sequence number (from 1) and its data, already JSON-encoded."""

    __slots__ = ("_frame", "_wire", "data_json", "seq")

    def __init__(self, seq: int, data_json: str) -> None:
        self.seq = seq
        self.data_json = data_json
        self._frame: str | None = None
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        """The channel frame as websocket bytes, framed once however many subscribers get it."""
        wire = self._wire
        if wire is None:
            wire = self._wire = text_frame(self.frame.encode())
        return wire

    @property
    def frame(self) -> str:
        """The channel frame, encoded once however many subscribers receive it."""
        frame = self._frame
        if frame is None:
            frame = self._frame = f'{{"status":"event","data":{self.data_json},"seq":{self.seq}}}'
        return frame

    @property
    def data(self) -> object:
        return json.loads(self.data_json)

    def __repr__(self) -> str:
        return f"<StreamEvent {self.seq} {self.data_json[:40]}>"


class StreamEnd:
    """The end of a stream with the task's final state (and a short error text for failures)."""

    __slots__ = ("error", "frame", "last_seq", "state")

    def __init__(self, state: str, error: str | None, last_seq: int) -> None:
        self.state = state
        self.error = error
        self.last_seq = last_seq
        body: dict[str, object] = {"status": "stop", "state": state}
        if error:
            body["error"] = error
        self.frame = json.dumps(body, separators=(",", ":"))

    def __repr__(self) -> str:
        return f"<StreamEnd {self.state}>"


def _wire(events: list[StreamEvent]) -> bytes:
    """The frames of consecutive events, for one write."""
    return events[0].wire if len(events) == 1 else b"".join([event.wire for event in events])


class Start:
    """The marker a subscriber receives before any event of a stream."""

    __slots__ = ("run_id",)
    frame: Final = START_FRAME

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id


Item = Start | StreamEvent | StreamEnd


class SubscriberTooSlow(Exception):
    """The subscriber fell too far behind; it may subscribe again with `after=resume_after`."""

    def __init__(self, stream_id: str, resume_after: int) -> None:
        super().__init__(f"subscriber of {stream_id!r} too slow: resume after {resume_after}")
        self.stream_id = stream_id
        self.resume_after = resume_after


class Subscription:
    """One subscriber's bounded queue. Consume it with `await next_batch()` until it returns []."""

    __slots__ = (
        "_closed",
        "_held",
        "_items",
        "_overflowed",
        "_replayed",
        "_waiter",
        "after",
        "delivered_seq",
        "direct",
        "max_pending",
        "on_cut_off",
        "stream_id",
    )

    def __init__(self, stream_id: str, after: int, max_pending: int) -> None:
        self.stream_id = stream_id
        self.after = after
        self.max_pending = max_pending
        self.delivered_seq = after
        self._items: collections.deque[Item] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._overflowed = False
        self._replayed = 0
        # Events held for one write at the end of the stream's write window.
        self._held: list[StreamEvent] | None = None
        #: called with `resume_after` when the hub cuts this subscriber off (set by its consumer)
        self.on_cut_off: Callable[[int], None] | None = None
        #: hands an event's frame bytes straight to the consumer's connection while it waits
        #: with nothing queued; returns False when it cannot take them now (set by its consumer)
        self.direct: Callable[[bytes], bool] | None = None

    def _parked(self) -> bool:
        """Its consumer waits in next_batch and nothing is queued for it."""
        return not self._items and self._waiter is not None and not self._waiter.done()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _push(self, item: Item) -> bool:
        """Queue one live item; False when the subscriber has fallen too far behind."""
        if len(self._items) >= self.max_pending + self._replayed:
            self._overflowed = True
            self._items.clear()
            self._wake()
            return False
        self._items.append(item)
        self._wake()
        return True

    def _push_all(self, events: list[StreamEvent]) -> bool:
        for event in events:
            if not self._push(event):
                return False
        return True

    def _replay(self, items: list[Item]) -> None:
        # History is bounded by the stream's limits, so replay does not count against max_pending.
        self._replayed += len(items)
        self._items.extend(items)
        self._wake()

    def _finish(self) -> None:
        self._closed = True
        self._wake()

    @property
    def pending(self) -> int:
        return len(self._items) + len(self._held or ())

    async def next_batch(self) -> list[Item]:
        """Everything queued so far (waiting for at least one item); [] once the subscription ended."""
        while not self._items:
            if self._overflowed:
                raise SubscriberTooSlow(self.stream_id, self.delivered_seq)
            if self._closed:
                return []
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._overflowed:
            raise SubscriberTooSlow(self.stream_id, self.delivered_seq)
        batch = list(self._items)
        self._items.clear()
        self._replayed = 0
        for item in reversed(batch):
            if isinstance(item, StreamEvent):
                self.delivered_seq = item.seq
                break
        if isinstance(batch[-1], StreamEnd):
            self._closed = True
        return batch

    def __repr__(self) -> str:
        return f"<Subscription {self.stream_id!r} after={self.after} pending={len(self._items)}>"


class Stream:
    """One run's events: the first `keep_head` always kept, then a tail bounded in count and bytes."""

    def __init__(
        self, stream_id: str, run_id: str, *, keep_head: int, max_events: int, max_bytes: int
    ) -> None:
        self.id = stream_id
        self.run_id = run_id
        self.head: list[StreamEvent] = []
        self.tail: collections.deque[StreamEvent] = collections.deque()
        self.last_seq = 0
        self.bytes = 0
        self.head_bytes = 0
        self.dropped = 0
        self.end: StreamEnd | None = None
        self.subscribers: set[Subscription] = set()
        # When the last publish of this stream ended (or the last writing pass of held events,
        # if writes are what takes the time): an event within the write window after it is held.
        self.busy_until = -float("inf")
        self._keep_head = keep_head
        self._max_tail = max_events - keep_head
        self._max_bytes = max_bytes
        self._max_head_bytes = max_bytes // 2

    @property
    def is_open(self) -> bool:
        return self.end is None

    def _record(self, event: StreamEvent) -> None:
        size = len(event.data_json)
        self.bytes += size
        # The head is kept whole, so it may hold at most half the byte bound: huge first events
        # go to the tail, where the bound applies to them like to any other.
        if len(self.head) < self._keep_head and self.head_bytes + size <= self._max_head_bytes:
            self.head.append(event)
            self.head_bytes += size
        else:
            self.tail.append(event)
        while self.tail and (len(self.tail) > self._max_tail or self.bytes > self._max_bytes):
            self.bytes -= len(self.tail.popleft().data_json)
            self.dropped += 1

    def history(self, after: int = 0) -> list[StreamEvent]:
        """Kept events with seq > after, in order (a jump in seq marks events dropped by the bound)."""
        return [event for part in (self.head, self.tail) for event in part if event.seq > after]

    def __len__(self) -> int:
        return len(self.head) + len(self.tail)

    def __repr__(self) -> str:
        state = "open" if self.end is None else self.end.state
        return f"<Stream {self.id!r} run={self.run_id[:8]} {state} events={self.last_seq}>"


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
        write_window: float = 0.0005,
    ) -> None:
        self._limits = {"keep_head": keep_head, "max_events": max_events, "max_bytes": max_bytes}
        self._kept_streams = kept_streams
        self._max_pending = max_pending
        self._write_window = write_window
        self._holding: list[Subscription] = []  # subscribers with held events
        self._write_timer: asyncio.Handle | None = None  # writes the held events
        self._deliveries = 0  # publishes so far: tells whether a burst is still going on
        self._streams: dict[str, Stream] = {}
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._waiting: dict[str, set[Subscription]] = {}

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
        live = sum(len(stream.subscribers) for stream in self._streams.values())
        return live + sum(len(waiting) for waiting in self._waiting.values())

    def open(self, stream_id: str, run_id: str) -> Stream:
        """Start a fresh run of `stream_id`; subscribers waiting for it receive `start`."""
        previous = self._streams.get(stream_id)
        if previous is not None and previous.is_open:
            raise RuntimeError(f"stream {stream_id!r} is still open (run {previous.run_id})")
        self._finished.pop(stream_id, None)
        stream = Stream(stream_id, run_id, **self._limits)
        self._streams[stream_id] = stream
        start = Start(run_id)
        for subscription in self._waiting.pop(stream_id, ()):
            subscription._replay([start])
            stream.subscribers.add(subscription)
        return stream

    def publish(self, stream_id: str, data_json: str) -> StreamEvent:
        """Record one event and hand it to every subscriber; never awaits."""
        stream = self._open_stream(stream_id)
        stream.last_seq += 1
        event = StreamEvent(stream.last_seq, data_json)
        stream._record(event)
        self._deliver(stream, [event])
        return event

    def publish_many(self, stream_id: str, data: list[str]) -> int:
        """Record consecutive events (a burst that arrived together) and hand them to every
        subscriber in one step; the seq of the first. Never awaits."""
        stream = self._open_stream(stream_id)
        first_seq = stream.last_seq + 1
        events = [StreamEvent(seq, data_json) for seq, data_json in enumerate(data, first_seq)]
        for event in events:
            stream._record(event)
        stream.last_seq += len(events)
        if events:
            self._deliver(stream, events)
        return first_seq

    def _open_stream(self, stream_id: str) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.end is not None:
            raise RuntimeError(f"stream {stream_id!r} is not open")
        return stream

    def _deliver(self, stream: Stream, events: list[StreamEvent]) -> None:
        """Hand new consecutive events to each subscriber: held, written, or queued."""
        first_seq = events[0].seq
        self._deliveries += 1
        hold = time.monotonic() - stream.busy_until < self._write_window
        too_slow = []
        for sub in stream.subscribers:
            # A subscription that resumes after seq N while the run is still short of N skips
            # the events it said it has.
            fresh = events if sub.after < first_seq else [e for e in events if e.seq > sub.after]
            if not fresh:
                continue
            if sub._held is not None:  # behind the held ones, in the same write
                sub._held += fresh
                if len(sub._held) >= MAX_HELD and not self._write_held_of(sub):
                    too_slow.append(sub)
                continue
            # A subscriber parked in next_batch with nothing queued has written everything it
            # was given: these events can go out ahead of nothing, without waking it.
            if sub.direct is not None and sub._parked():
                if hold:
                    self._hold(sub, fresh)
                    continue
                if sub.direct(_wire(fresh)):
                    sub.delivered_seq = fresh[-1].seq
                    continue
            if not sub._push_all(fresh):
                too_slow.append(sub)
        stream.busy_until = time.monotonic()
        for subscription in too_slow:
            self._cut_off(stream, subscription)

    def _hold(self, sub: Subscription, events: list[StreamEvent]) -> None:
        sub._held = list(events)
        self._holding.append(sub)
        if self._write_timer is None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._write_window
            self._write_timer = loop.call_soon(self._watch_burst, None, deadline)

    def _watch_burst(self, seen: int | None, deadline: float) -> None:
        """Write the held events once their burst is over, else at the end of the write window.

        It runs on the next turn of the loop, notes how many publishes there have been, and
        looks again one turn later: a task that sends an event each turn runs in between.
        """
        loop = asyncio.get_running_loop()
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
        began = time.monotonic()
        written: set[Stream] = set()
        for sub in holding:
            stream = self._streams.get(sub.stream_id)
            if stream is not None:
                written.add(stream)
            if not self._write_held_of(sub) and stream is not None:
                self._cut_off(stream, sub)
        ended = time.monotonic()
        if ended - began >= self._write_window:
            # Writing to many subscribers took longer than a window: the next events would
            # otherwise each be written alone, and writing them is what takes the time.
            for stream in written:
                stream.busy_until = ended

    @staticmethod
    def _write_held_of(sub: Subscription) -> bool:
        """Write or queue what `sub` holds; False when that made it too slow."""
        held, sub._held = sub._held, None
        if not held or sub._closed:
            return True
        if sub.direct is not None and sub._parked() and sub.direct(_wire(held)):
            sub.delivered_seq = held[-1].seq
            return True
        # The connection cannot take them now: they queue, in order, for its consumer.
        return sub._push_all(held)

    @staticmethod
    def _cut_off(stream: Stream, subscription: Subscription) -> None:
        stream.subscribers.discard(subscription)
        if subscription.on_cut_off is not None:
            subscription.on_cut_off(subscription.delivered_seq)
        logger.warning(
            "hub: a subscriber of %r fell %d events behind and was cut off",
            stream.id,
            subscription.max_pending,
        )

    def close(self, stream_id: str, state: str, error: str | None = None) -> StreamEnd | None:
        """End the open run of `stream_id`: subscribers receive the end and are released."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.end is not None:
            return None
        stream.end = StreamEnd(state, error, stream.last_seq)
        for subscription in list(stream.subscribers):
            # The held events go before the end.
            if subscription._held is not None and not self._write_held_of(subscription):
                self._cut_off(stream, subscription)
        for subscription in stream.subscribers:
            # The end always gets in, even behind a full queue: it is one small item, and a
            # subscriber that is merely slow must still learn that the stream is over.
            subscription._replay([stream.end])
        stream.subscribers.clear()
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
            stream._record(StreamEvent(seq, data_json))
        stream.end = StreamEnd(state, error, stream.last_seq)
        self._streams[stream_id] = stream
        self._remember_finished(stream_id)
        return stream

    def _remember_finished(self, stream_id: str) -> None:
        self._finished[stream_id] = None
        self._finished.move_to_end(stream_id)
        while len(self._finished) > self._kept_streams:
            evicted, _ = self._finished.popitem(last=False)
            self._streams.pop(evicted, None)

    def subscribe(self, stream_id: str, after: int = 0) -> Subscription:
        """Replay what `stream_id` has after seq `after`, then follow it live.

        An id with no run yet gets nothing until its run opens.
        """
        subscription = Subscription(stream_id, after, self._max_pending)
        stream = self._streams.get(stream_id)
        if stream is None:
            self._waiting.setdefault(stream_id, set()).add(subscription)
            return subscription
        items: list[Item] = [Start(stream.run_id)]
        items.extend(stream.history(after))
        if stream.end is not None:
            items.append(stream.end)
        else:
            stream.subscribers.add(subscription)
        subscription._replay(items)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        stream = self._streams.get(subscription.stream_id)
        if stream is not None:
            stream.subscribers.discard(subscription)
        waiting = self._waiting.get(subscription.stream_id)
        if waiting is not None:
            waiting.discard(subscription)
            if not waiting:
                del self._waiting[subscription.stream_id]
        subscription._finish()

    def shutdown(self) -> None:
        """Release every subscriber (their `next_batch` returns [])."""
        self.write_held()
        for stream in self._streams.values():
            for subscription in stream.subscribers:
                subscription._finish()
            stream.subscribers.clear()
        for waiting in self._waiting.values():
            for subscription in waiting:
                subscription._finish()
        self._waiting.clear()

"""One subscriber of a stream: its bounded queue, the events held for it in the write window,
and its place in its stream's direct table while the hub may write to its sink directly."""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, Final

from taskcast.hub.sink import Sink, SubscriberTooSlow, WriteEach, write_each
from taskcast.hub.stream import Item, StreamEnd, StreamEvent

if TYPE_CHECKING:
    from taskcast.hub.stream import Stream

#: a subscriber's held events are written before the window ends once there are this many
MAX_HELD: Final = 256
#: bytes of event data held across all subscribers before their held events are written at once
MAX_HELD_BYTES: Final = 1024 * 1024


#: what `Subscription.offer` did with new events
TAKEN, HOLDING, TOO_SLOW = 0, 1, 2


def data_size(events: list[StreamEvent]) -> int:
    """The bytes of event data that count toward a subscriber's byte bound."""
    if len(events) == 1:
        return len(events[0].data_json)
    return sum(len(event.data_json) for event in events)


class Subscription:
    """One subscriber's bounded queue. Consume it with `await next_batch()` until it returns [].

    While it follows an open stream and is idle (its consumer waits with nothing queued, nothing
    is held for it, and it has every event so far), it is in the stream's `direct` table, which
    a publish writes to without looking at each subscriber's state: it joins and leaves the
    table itself as that state changes.
    """

    __slots__ = (
        "_bytes",
        "_closed",
        "_delivered",
        "_items",
        "_kind_table",
        "_overflowed",
        "_replayed",
        "_sink",
        "_stream",
        "_waiter",
        "_write_each",
        "after",
        "direct",
        "held",
        "max_pending",
        "max_pending_bytes",
        "ready",
        "stream_id",
    )

    def __init__(
        self,
        stream_id: str,
        after: int,
        max_pending: int,
        sink: Sink | None = None,
        max_pending_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.stream_id = stream_id
        self.after = after
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self._bytes = 0  # event data queued beyond the replay (held events: see the hub)
        self._delivered = after  # see delivered_seq
        self._stream: Stream | None = None  # the open stream it follows live
        #: whether it is in its stream's direct table
        self.direct = False
        # How its kind of sink writes a direct table, which is the key of its table, and that
        # table in the stream it follows (None when it follows none).
        self._write_each: WriteEach = getattr(type(sink), "write_each", write_each)
        self._kind_table: dict[Subscription, Sink] | None = None
        #: events held for one write when the stream's write window ends (None: none held)
        self.held: list[StreamEvent] | None = None
        self._sink = sink
        self._items: collections.deque[Item] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        #: the sink while the consumer waits with nothing queued: what the hub writes through
        #: directly (None otherwise); kept as the consumer waits and wakes, so that the hub's
        #: fan-out reads one attribute per subscriber instead of asking the queue and the waiter
        self.ready: Sink | None = None
        self._closed = False
        self._overflowed = False
        self._replayed = 0

    @property
    def delivered_seq(self) -> int:
        """The last seq handed to the consumer or written through the sink."""
        stream = self._stream
        if stream is not None and self.direct:
            # Writes to the direct table are counted once per publish, not per subscriber.
            return max(self._delivered, stream.direct_seq)
        return self._delivered

    @delivered_seq.setter
    def delivered_seq(self, seq: int) -> None:
        self._delivered = seq

    # -- the stream's direct table ---------------------------------------------------------------

    def joined(self, stream: Stream) -> None:
        """It follows `stream` live now (`Stream.follow` calls this)."""
        self._stream = stream
        self._kind_table = stream.direct.setdefault(self._write_each, {})
        self._join_direct()

    def left(self) -> None:
        """It follows no stream any more (`Stream.unfollow` calls this)."""
        self._leave_direct()
        self._stream = None
        self._kind_table = None

    def _join_direct(self) -> None:
        # Called at every wait of the consumer: kept to the few checks it needs. (A stream's
        # end wakes every subscriber and then drops them, so an ended stream has none idle.)
        table = self._kind_table
        sink = self.ready
        if table is not None and sink is not None and self.held is None:
            stream = self._stream
            assert stream is not None
            # Not while events are held for the tables: it has them already, and they are
            # written to every member when the window ends.
            if self.after <= stream.last_seq and stream.direct_held is None:
                table[self] = sink
                self.direct = True

    def _leave_direct(self) -> None:
        if self.direct:
            stream = self._stream
            assert self._kind_table is not None and stream is not None
            del self._kind_table[self]
            self.direct = False
            if stream.direct_seq > self._delivered:
                self._delivered = stream.direct_seq
            if stream.direct_held:
                # Held for the tables and not written yet: still due to it, first in its queue.
                self.push_all(stream.direct_held)

    def refused(self) -> None:
        """The sink refused a write from the direct table: it leaves the table (the hub queues
        the events instead)."""
        self._leave_direct()

    # -- the consumer's side -----------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Items queued for it, and events held for it or for the direct table it is in."""
        held = self.held
        if held is None and self.direct and self._stream is not None:
            held = self._stream.direct_held
        return len(self._items) + len(held or ())

    @property
    def pending_bytes(self) -> int:
        """Bytes of live event data queued or held for it (the replay is bounded by the history)."""
        return self._bytes

    async def next_batch(self) -> list[Item]:
        """Everything queued so far (waiting for at least one item); [] once the subscription ended."""
        while not self._items:
            if self._overflowed:
                raise SubscriberTooSlow(self.stream_id, self.delivered_seq)
            if self._closed:
                return []
            self._waiter = asyncio.get_running_loop().create_future()
            self.ready = self._sink
            self._join_direct()
            try:
                await self._waiter
            finally:
                self._waiter = None
                if self.ready is not None:
                    self.ready = None
                    self._leave_direct()
        if self._overflowed:
            raise SubscriberTooSlow(self.stream_id, self.delivered_seq)
        batch = list(self._items)
        self._items.clear()
        self._replayed = 0
        self._bytes = 0
        for item in reversed(batch):
            if isinstance(item, StreamEvent):
                self.delivered_seq = item.seq
                break
        if isinstance(batch[-1], StreamEnd):
            self._closed = True
        return batch

    # -- the hub's side: called on the loop, inside publish, never awaiting -----------------------

    def offer(self, events: list[StreamEvent], hold: bool) -> int:
        """Take new live events: behind held ones; held, if `hold` and
        its consumer is idle; written through the sink if it is idle; else queued. Returns
        TAKEN, HOLDING (the hub must write the held events later) or TOO_SLOW.

        One call per subscriber per publish (the hub appends to held events itself): this is
        the fan-out's hot path, so its checks are written out here rather than spread over
        several small methods."""
        if self.after >= events[0].seq:
            # It resumed after seq N while the run was still short of N: skip what it has.
            events = [event for event in events if event.seq > self.after]
            if not events:
                return TAKEN
        held = self.held
        if held is not None:  # behind the held ones, in the same write
            held += events
            if len(held) < MAX_HELD:
                return TAKEN
            return TAKEN if self.write_held() else TOO_SLOW
        if self.ready is not None:
            # Idle: its consumer waits with nothing queued, so these go ahead of nothing.
            if hold:
                self._leave_direct()
                self.held = list(events)
                if len(events) < MAX_HELD:
                    return HOLDING
                return TAKEN if self.write_held() else TOO_SLOW
            if self.write_if_idle(events):
                return TAKEN
        return TAKEN if self.push_all(events) else TOO_SLOW

    def write_if_idle(self, events: list[StreamEvent]) -> bool:
        """Write `events` through the sink if the consumer is idle and the sink takes them."""
        sink = self.ready
        if sink is None:
            return False
        if not sink.write(events):
            self._leave_direct()
            return False
        self._delivered = events[-1].seq
        self._join_direct()
        return True

    def push_all(self, events: list[StreamEvent]) -> bool:
        """Queue live events; False when that made the subscriber fall too far behind."""
        for event in events:
            if not self._push(event):
                return False
        return True

    def _push(self, event: StreamEvent) -> bool:
        size = len(event.data_json)
        # One event larger than the byte bound still gets through to a reader with nothing
        # waiting: the bound is on what piles up, not on what one event may be.
        if len(self._items) >= self.max_pending + self._replayed or (
            self._bytes and self._bytes + size > self.max_pending_bytes
        ):
            self._overflow()
            return False
        self._items.append(event)
        self._bytes += size
        self._wake()
        return True

    def _overflow(self) -> None:
        """Too slow: let go of everything queued and held now; the consumer learns it next."""
        self._overflowed = True
        self._items.clear()
        self.held = None
        self._bytes = 0
        self._wake()

    def replay(self, items: list[Item]) -> None:
        """Queue items that do not count against max_pending: history (bounded by the stream's
        limits), the start marker and the end."""
        self._replayed += len(items)
        self._items.extend(items)
        self._wake()

    def write_held(self) -> bool:
        """Write or queue what it holds; False when that made it too slow."""
        held, self.held = self.held, None
        if not held or self._closed:
            self._join_direct()
            return True
        if self.write_if_idle(held):
            return True
        # The connection cannot take them now: they queue, in order, for its consumer.
        return self.push_all(held)

    def cut_off(self) -> None:
        """Tell the sink the hub dropped this subscriber (its queue overflowed already)."""
        if self._sink is not None:
            self._sink.cut_off(self.delivered_seq)

    def finish(self) -> None:
        """No more items: next_batch returns what is queued, then []."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self.ready is not None:
            self.ready = None
            self._leave_direct()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<Subscription {self.stream_id!r} after={self.after} pending={len(self._items)}>"

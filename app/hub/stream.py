"""One run's stream: its events, its end, and its bounded history (a kept head and a tail
bounded in count and bytes). What a subscriber receives is one of the items defined here."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from taskcast.hub.history import EventLog

if TYPE_CHECKING:
    from taskcast.hub.sink import Sink, WriteEach
    from taskcast.hub.subscription import Subscription


class StreamEvent:
    """One published event: its sequence number (from 1) and its data, already JSON-encoded.

    `encoded` is a slot for a wire layer to keep this event's encoding in: the hub hands the
    same event object to every subscriber, so an encoding stored there is made once, however
    many subscribers there are. The hub never reads it.
    """

    __slots__ = ("data_json", "encoded", "seq")

    def __init__(self, seq: int, data_json: str) -> None:
        self.seq = seq
        self.data_json = data_json
        self.encoded: Any = None

    @property
    def data(self) -> object:
        return json.loads(self.data_json)

    def __repr__(self) -> str:
        return f"<StreamEvent {self.seq} {self.data_json[:40]}>"


class StreamEnd:
    """The end of a stream with the task's final state (and a short error text for failures).

    `encoded` is a wire layer's slot, as for `StreamEvent`."""

    __slots__ = ("encoded", "error", "last_seq", "state")

    def __init__(self, state: str, error: str | None, last_seq: int) -> None:
        self.state = state
        self.error = error
        self.last_seq = last_seq
        self.encoded: Any = None

    def __repr__(self) -> str:
        return f"<StreamEnd {self.state}>"


class Start:
    """The marker a subscriber receives before any event of a stream; on the Redis engine it
    names the epoch of the stream's history there (None on the memory engine)."""

    __slots__ = ("epoch", "run_id")

    def __init__(self, run_id: str, epoch: str | None = None) -> None:
        self.run_id = run_id
        self.epoch = epoch

    def __repr__(self) -> str:
        return f"<Start {self.run_id[:8]}>"


Item = Start | StreamEvent | StreamEnd


class Stream:
    """One run's events: the first `keep_head` always kept, then a tail bounded in count and bytes.

    The history is kept as the events' JSON texts and seqs, not as one object per event: the
    few head events in two lists, the tail in an `EventLog` of text blocks, which a full garbage
    collection visits block by block rather than event by event. `history` makes the
    `StreamEvent`s a replay hands out when asked.
    """

    __slots__ = (
        "_head_left",
        "_head_seqs",
        "_head_texts",
        "_max_bytes",
        "_max_head_bytes",
        "_max_tail",
        "_tail",
        "_tail_len",
        "busy_until",
        "bytes",
        "direct",
        "direct_held",
        "direct_seq",
        "dropped",
        "dropped_bytes",
        "end",
        "epoch",
        "head_bytes",
        "held_publishes",
        "hold_after",
        "id",
        "last_seq",
        "run_id",
        "subscribers",
    )

    def __init__(
        self, stream_id: str, run_id: str, *, keep_head: int, max_events: int, max_bytes: int
    ) -> None:
        self.id = stream_id
        self.run_id = run_id
        self._head_seqs: list[int] = []
        self._head_texts: list[str] = []
        self._tail = EventLog()
        self._tail_len = 0
        self.last_seq = 0
        self.bytes = 0
        self.head_bytes = 0
        self.dropped = 0
        self.dropped_bytes = 0
        self.end: StreamEnd | None = None
        #: the Redis engine's epoch of this run's history (None on the memory engine)
        self.epoch: str | None = None
        #: who follows this run live (`follow` and `unfollow` add and remove them)
        self.subscribers: set[Subscription] = set()
        #: the subscribers a publish writes to straight away, with their sinks: each one's
        #: consumer waits with nothing queued, nothing is held for it, and it has every event
        #: so far. One table per kind of sink, keyed by how that kind writes a table; the
        #: subscribers keep themselves in it as their state changes.
        self.direct: dict[WriteEach, dict[Subscription, Sink]] = {}
        #: the seq of the last event written to the direct subscribers
        self.direct_seq = 0
        #: events after `direct_seq` held in the write window for every direct subscriber at
        #: once (None: none held); while some are, nobody joins the tables, and a subscriber
        #: that leaves them has these queued for it
        self.direct_held: list[StreamEvent] | None = None
        # When the last publish of this stream ended (or the last writing pass of held events,
        # if writes are what takes the time): an event within the write window after it is held.
        self.busy_until = -float("inf")
        # Publishes held since the last writing pass, and when holding may begin again after a
        # pass that wrote a single publish (see the hub's write window).
        self.held_publishes = 0
        self.hold_after = -float("inf")
        self._head_left = keep_head  # events the head may still take
        self._max_tail = max_events - keep_head
        self._max_bytes = max_bytes
        self._max_head_bytes = max_bytes // 2

    @property
    def is_open(self) -> bool:
        return self.end is None

    def follow(self, subscription: Subscription) -> bool:
        """Add a live subscriber; False if it follows already."""
        if subscription in self.subscribers:
            return False
        self.subscribers.add(subscription)
        subscription.joined(self)
        return True

    def unfollow(self, subscription: Subscription) -> bool:
        """Remove a live subscriber; False if it did not follow."""
        if subscription not in self.subscribers:
            return False
        self.subscribers.remove(subscription)
        subscription.left()
        return True

    def unfollow_all(self) -> int:
        """Remove every live subscriber; how many there were."""
        count = len(self.subscribers)
        for subscription in self.subscribers:
            subscription.left()
        self.subscribers.clear()
        self.direct.clear()
        return count

    def record(self, seq: int, data_json: str) -> None:
        """Keep event `seq` in the history, dropping the oldest tail events beyond the bounds."""
        size = len(data_json)
        self.bytes += size
        tail = self._tail
        # The head is kept whole, so it may hold at most half the byte bound: huge first events
        # go to the tail, where the bound applies to them like to any other.
        if self._head_left and self.head_bytes + size <= self._max_head_bytes:
            self._head_seqs.append(seq)
            self._head_texts.append(data_json)
            self._head_left -= 1
            self.head_bytes += size
        else:
            tail.append(seq, data_json, size)
            self._tail_len += 1
        # A head event counts toward the byte bound too: it may push out tail events.
        while self._tail_len and (self._tail_len > self._max_tail or self.bytes > self._max_bytes):
            size = tail.popleft()
            self._tail_len -= 1
            self.bytes -= size
            self.dropped += 1
            self.dropped_bytes += size

    def kept(self) -> tuple[list[tuple[int, str]], int]:
        """What the bound keeps, for a store to keep the same: the head events (seq, data_json),
        and the seq from which every event is kept (last_seq + 1 when the tail is empty)."""
        first = self._tail.first_seq
        tail_from = self.last_seq + 1 if first is None else first
        return list(zip(self._head_seqs, self._head_texts, strict=True)), tail_from

    def history(self, after: int = 0) -> list[StreamEvent]:
        """Kept events with seq > after, in order (a jump in seq marks events dropped by the bound)."""
        events = [
            StreamEvent(seq, text)
            for seq, text in zip(self._head_seqs, self._head_texts, strict=True)
            if seq > after
        ]
        last = self._tail.last_seq
        if last is not None and last > after:
            events += [StreamEvent(seq, text) for seq, text in self._tail if seq > after]
        return events

    @property
    def head(self) -> list[StreamEvent]:
        """The kept head as events (made on each call)."""
        return list(map(StreamEvent, self._head_seqs, self._head_texts))

    @property
    def tail(self) -> list[StreamEvent]:
        """The kept tail as events (made on each call)."""
        return [StreamEvent(seq, text) for seq, text in self._tail]

    def __len__(self) -> int:
        return len(self._head_seqs) + self._tail_len

    def __repr__(self) -> str:
        state = "open" if self.end is None else self.end.state
        return f"<Stream {self.id!r} run={self.run_id[:8]} {state} events={self.last_seq}>"

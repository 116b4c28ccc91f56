"""One run's stream: its events, its end, and its bounded history (a kept head and a tail
bounded in count and bytes). What a subscriber receives is one of the items defined here."""

from __future__ import annotations

import collections
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    """The marker a subscriber receives before any event of a stream."""

    __slots__ = ("run_id",)

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"<Start {self.run_id[:8]}>"


Item = Start | StreamEvent | StreamEnd


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
        self.dropped_bytes = 0
        self.end: StreamEnd | None = None
        #: who follows this run live (the hub adds and removes them)
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

    def record(self, event: StreamEvent) -> None:
        """Keep `event` in the history, dropping the oldest tail events beyond the bounds."""
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
            size = len(self.tail.popleft().data_json)
            self.bytes -= size
            self.dropped += 1
            self.dropped_bytes += size

    def kept(self) -> tuple[list[StreamEvent], int]:
        """What the bound keeps, for a store to keep the same: the head events, and the seq
        from which every event is kept (last_seq + 1 when the tail is empty)."""
        tail_from = self.tail[0].seq if self.tail else self.last_seq + 1
        return list(self.head), tail_from

    def history(self, after: int = 0) -> list[StreamEvent]:
        """Kept events with seq > after, in order (a jump in seq marks events dropped by the bound)."""
        return [event for part in (self.head, self.tail) for event in part if event.seq > after]

    def __len__(self) -> int:
        return len(self.head) + len(self.tail)

    def __repr__(self) -> str:
        state = "open" if self.end is None else self.end.state
        return f"<Stream {self.id!r} run={self.run_id[:8]} {state} events={self.last_seq}>"

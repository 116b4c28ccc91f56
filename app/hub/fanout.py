"""A publish's way to each subscriber of its stream: the direct tables, the queues, and the
write window.

Idle subscribers keep themselves in their stream's direct table, one table per kind of sink,
and a publish hands each table to its kind's `write_each`: a kind that writes the whole table
in one pass (the channel's sockets) costs no call per subscriber. The others are offered the
events one by one: written, queued, held, or found too slow.

An event published within `write_window` seconds of the previous one on its stream is held,
and written with the ones after it: as soon as nothing more has been published for two
turns of the loop, or, while events keep coming, when the window ends. That is one write per
subscriber for a burst instead of one per event. An event that comes alone is written at once.
Events are held for a stream's direct tables as a whole (`Stream.direct_held`): their members
stay in them, so holding costs no call per subscriber either, and each table is written in
one pass when the hold ends. Nobody joins a table while events are held for it, and a member
that leaves it has them queued.
When a writing pass finds that only one publish was held (events a millisecond apart on a wide
fan-out can each follow the previous one's writing within the window, and still come one by
one), holding pauses on that stream for `LONE_HOLD_PAUSE`: holding them saved no write and cost
a second pass over the subscribers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from taskcast.hub.stream import Stream, StreamEvent
from taskcast.hub.subscription import (
    HOLDING,
    MAX_HELD,
    MAX_HELD_BYTES,
    TOO_SLOW,
    Subscription,
    data_size,
)

#: seconds a stream's events are written at once after a writing pass of its held events found
#: a single publish among them
LONE_HOLD_PAUSE = 0.05

#: what the hub does with a subscriber that fell too far behind
CutOff = Callable[[Stream, Subscription], None]


class FanOut:
    """Delivers new events of the hub's streams and writes the held ones when their window ends."""

    __slots__ = (
        "_cut_off",
        "_deliveries",
        "_held_bytes",
        "_held_streams",
        "_holding",
        "_streams",
        "_timer_loop",
        "_write_timer",
        "_write_window",
    )

    def __init__(self, streams: dict[str, Stream], write_window: float, cut_off: CutOff) -> None:
        self._streams = streams  # the hub's table of streams: a held subscriber's is looked up
        self._write_window = write_window
        self._cut_off = cut_off
        self._holding: list[Subscription] = []  # subscribers with held events
        self._held_streams: list[Stream] = []  # streams with events held for their direct tables
        self._write_timer: asyncio.Handle | None = None  # writes the held events
        self._timer_loop: asyncio.AbstractEventLoop | None = None  # the loop of that timer
        self._deliveries = 0  # publishes so far: tells whether a burst is still going on
        self._held_bytes = 0  # event data published since subscribers began holding

    def deliver(self, stream: Stream, events: list[StreamEvent]) -> None:
        """Hand new consecutive events to each subscriber: held, written, or queued."""
        self._deliveries += 1
        began = time.monotonic()
        hold = began - stream.busy_until < self._write_window and began >= stream.hold_after
        first_seq, last_seq = events[0].seq, events[-1].seq
        too_slow: list[Subscription] = []
        holding = False
        refused: Sequence[Subscription] = ()
        written = 0  # subscribers handled through the direct tables
        direct = stream.direct
        if direct:
            table_held = stream.direct_held
            if table_held is not None or hold:
                # Held for the whole tables at once: their members stay in them, and each gets
                # one write of everything held when the window ends.
                written = sum(map(len, direct.values()))
                if table_held is not None:
                    table_held += events  # behind the ones held already, in the same write
                    holding = True
                elif written:
                    stream.direct_held = list(events)
                    holding = True
                    self._held_streams.append(stream)
                    self._arm()
            else:
                # The commonest case, once per subscriber per event: its idle subscribers,
                # written to by their kind of sink in one pass (they keep themselves in these
                # tables).
                for write_each, table in direct.items():
                    if table:
                        written += len(table)
                        refused_here = write_each(table, events)
                        if refused_here:
                            refused = [*refused, *refused_here] if refused else refused_here
                if refused:  # the connections that cannot take them now: they queue
                    too_slow += [sub for sub in refused if not _queued_after_refusal(sub, events)]
                stream.direct_seq = last_seq
        for sub in stream.subscribers if len(stream.subscribers) > written else ():
            if written and (sub.direct or sub in refused):
                continue  # written or held above
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
                self._holding.append(sub)
                self._arm()
            elif outcome == TOO_SLOW:
                too_slow.append(sub)
        if holding:
            stream.held_publishes += 1
            table_held = stream.direct_held
            if table_held is not None and len(table_held) >= MAX_HELD:
                # After the others were offered these events: the members this write finds
                # refusing leave their tables, and are not to be offered them again.
                too_slow += self.write_direct_held(stream)
        if self._holding or self._held_streams:
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

    def write_direct_held(self, stream: Stream) -> list[Subscription]:
        """Write the events held for a stream's direct tables to every member, in one write
        each; those that cannot take them queue them. The subscribers that fell too far behind
        for that (the caller cuts them off)."""
        events, stream.direct_held = stream.direct_held, None
        if not events:
            return []
        refused: list[Subscription] = []
        for write_each, table in stream.direct.items():
            if table:
                refused += write_each(table, events)
        # Before direct_seq moves on: a subscriber leaving its table has had up to it only.
        too_slow = [sub for sub in refused if not _queued_after_refusal(sub, events)]
        stream.direct_seq = events[-1].seq
        return too_slow

    def _arm(self) -> None:
        """Start watching for the end of the burst, unless already watching."""
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
        held_streams, self._held_streams = self._held_streams, []
        self._held_bytes = 0
        began = time.monotonic()
        written: set[Stream] = set(held_streams)
        for held_stream in held_streams:
            for sub in self.write_direct_held(held_stream):
                self._cut_off(held_stream, sub)
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


def _queued_after_refusal(sub: Subscription, events: list[StreamEvent]) -> bool:
    """A direct subscriber whose sink refused `events`: it leaves its table and queues them;
    False when that made it fall too far behind."""
    sub.refused()
    return sub.push_all(events)

"""The channel's heartbeat: each open socket is pinged once it has been silent for its period,
and dropped when no pong comes within half of it; one timer and one heap serve every socket.

aiohttp's own heartbeat keeps a timer handle or two per socket in the event loop's heap and
cancels one at every pong and every close. asyncio rebuilds its whole heap once half of its
handles are cancelled, comparing them in Python: with 10,000 sockets that held the loop 10 to
15 ms every 20 s or so, and again in the second in which thousands of streams ended. Here each
socket has an entry in a heap of plain tuples, which nothing cancels: an entry that comes up
after its socket was heard from, or closed, is put back with its new time, or dropped.

A socket's period is drawn at random between half the setting and the setting, so a crowd of
sockets opened in the same second (browsers reconnecting after a restart) is not pinged in one
turn of the loop; a proxy's idle timeout may rely on it never being longer than the setting.
The sweeps come at most every ten-thousandth of the setting (`GRANULES`: 3 ms at the default
30 s, two or three sockets a sweep for 10,000 of them), each taking the sockets due by then, and
the periods are drawn short of the setting by that much.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
from typing import Final

from aiohttp import web

from taskcast.web.wire import PING_FRAME

logger = logging.getLogger(__name__)

#: a socket's period is the setting less up to this share of it, at random
SPREAD: Final = 0.5
#: heap entries looked at in one turn of the loop; the rest wait for the next turn (each ping
#: wakes its peer and brings a pong back: with 32 a turn, a sweep at 10,000 sockets took up to
#: 5 ms, so a few at a time keep pings and pongs from bunching)
PER_TURN: Final = 4
#: sweeps come at most every setting / GRANULES seconds
GRANULES: Final = 10000
#: the heap is rebuilt without the entries of closed sockets once there are more of them than
#: this and than live ones (each would otherwise bring a sweep of its own when it came up)
COMPACT_AFTER: Final = 64


def spread_period(seconds: float) -> float:
    """One socket's period: between (1 - SPREAD) times the setting and the setting, less the
    time a sweep may come after it."""
    return (seconds - seconds / GRANULES) * (1.0 - SPREAD * random.random())


class Beat:
    """One socket's heartbeat. The channel calls `heard` for every frame the peer sends."""

    __slots__ = ("_loop", "closed", "heard_at", "period", "pinged_at", "transport", "ws")

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        period: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        #: the socket's websocket and transport; None once its heartbeat is removed, so that
        #: the entry left in the heap holds nothing of a closed connection
        self.ws: web.WebSocketResponse | None = ws
        self.transport: asyncio.Transport | None = transport
        self.period = period
        self._loop = loop
        self.heard_at = loop.time()
        #: when the unanswered ping went out (None: none is awaited)
        self.pinged_at: float | None = None
        #: the socket is gone, or no longer pinged: its entries are dropped when they come up
        self.closed = False

    def heard(self) -> None:
        self.heard_at = self._loop.time()


class Heartbeat:
    """Every open channel socket's heartbeat (see the module)."""

    __slots__ = (
        "_closed",
        "_heap",
        "_loop",
        "_order",
        "_timer",
        "_timer_at",
        "dropped",
        "granule",
        "pings",
        "seconds",
    )

    def __init__(self, seconds: float) -> None:
        if not 0 < seconds < math.inf:
            raise ValueError(f"a heartbeat is a positive number of seconds, not {seconds}")
        self.seconds = seconds
        #: the least time between two sweeps
        self.granule = seconds / GRANULES
        self._heap: list[tuple[float, int, Beat]] = []
        self._closed = 0  # entries in the heap whose socket is closed
        self._order = itertools.count()  # equal times never compare the beats themselves
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Handle | None = None
        self._timer_at = math.inf
        #: pings sent and sockets dropped for want of a pong, since the start
        self.pings = 0
        self.dropped = 0

    def __len__(self) -> int:
        """Heap entries: one per socket, and those of closed sockets not yet dropped."""
        return len(self._heap)

    def add(self, ws: web.WebSocketResponse, transport: asyncio.Transport) -> Beat:
        """Start the heartbeat of a websocket just opened on `transport`."""
        loop = self._loop = asyncio.get_running_loop()
        beat = Beat(ws, transport, spread_period(self.seconds), loop)
        self._push(beat.heard_at + beat.period, beat)
        return beat

    def remove(self, beat: Beat) -> None:
        """Stop the heartbeat of a socket that is closing or closed.

        Its entry stays in the heap until it comes up, or until closed sockets' entries
        outnumber the live ones and the heap is rebuilt without them; so the beat lets go of
        the socket now. A closed connection's request, handler task and the exceptions it
        ended with would otherwise stay alive that long: after a burst of short-lived sockets,
        tens of megabytes for up to 30 s, and a sweep for each entry as it came up.
        """
        if not beat.closed:  # a beat dropped for want of a pong has no entry left
            self._closed += 1
        beat.closed = True
        beat.ws = beat.transport = None
        if self._closed > COMPACT_AFTER and self._closed * 2 > len(self._heap):
            # Tuples compare by time and order, never by beat: heapify stays in C.
            self._heap = [entry for entry in self._heap if not entry[2].closed]
            heapq.heapify(self._heap)
            self._closed = 0

    def stop(self) -> None:
        """Cancel the timer and forget every socket (the app is shutting down)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, math.inf
        self._heap.clear()
        self._closed = 0

    def _push(self, when: float, beat: Beat) -> None:
        heapq.heappush(self._heap, (when, next(self._order), beat))
        if when < self._timer_at:
            assert self._loop is not None
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = when
            self._timer = self._loop.call_at(when, self._sweep)

    def _sweep(self) -> None:
        """Look at the entries that are due: ping the silent sockets, drop those whose ping
        went unanswered, put back those heard from since."""
        loop = self._loop
        assert loop is not None
        # While it sweeps, what it puts back schedules nothing: it sets the next timer itself.
        self._timer, self._timer_at = None, -math.inf
        now, heap = loop.time(), self._heap
        for _ in range(PER_TURN):
            if not heap or heap[0][0] > now:
                break
            _, _, beat = heapq.heappop(heap)
            if beat.closed:
                self._closed -= 1  # counted when it was removed
                continue
            ws, transport = beat.ws, beat.transport
            if ws is None or transport is None or ws.closed or transport.is_closing():
                # It closes: nothing more is written to it, its heartbeat included. Its entry
                # is gone now, so the channel's `remove` does not count it.
                beat.closed = True
                continue
            pinged_at = beat.pinged_at
            if pinged_at is not None:
                if beat.heard_at >= pinged_at:  # answered (any frame will do)
                    beat.pinged_at = None
                    self._push(beat.heard_at + beat.period, beat)
                elif now >= pinged_at + beat.period / 2:
                    self._drop(beat, transport)
                else:
                    self._push(pinged_at + beat.period / 2, beat)
                continue
            due = beat.heard_at + beat.period
            if due > now:  # heard from meanwhile: silent for less than its period
                self._push(due, beat)
                continue
            transport.write(PING_FRAME)
            beat.pinged_at = now
            self.pings += 1
            self._push(now + beat.period / 2, beat)
        else:
            # A crowd came due together: the rest in the next turn, after what else waits.
            self._timer_at = now
            self._timer = loop.call_soon(self._sweep)
            return
        if heap:
            self._timer_at = max(heap[0][0], now + self.granule)
            self._timer = loop.call_at(self._timer_at, self._sweep)
        else:
            self._timer_at = math.inf

    def _drop(self, beat: Beat, transport: asyncio.Transport) -> None:
        """No pong: the peer is gone or stuck. Its connection is aborted (closing it would wait
        for a peer that reads nothing), and the channel's reader loop ends with it."""
        beat.closed = True
        self.dropped += 1
        logger.info("channel: no pong within %.1f s of a ping; connection dropped", beat.period / 2)
        transport.abort()

"""How many channel close handshakes may begin in one turn of the loop, and be under way at once.

After `stop`, closing a socket costs the server about 100 µs, almost all of it in the kernel:
the close frame, the peer's close frame, the socket's removal from the selector and its close.
When thousands of streams end within the same second, those handshakes alone would take longer
than the second, every turn of the loop would run the ones that became ready during the turn
before, and the turns would grow to hundreds of milliseconds while live streams wait behind
them. Nothing waits on a handshake (the client has `stop` already), so they are paced instead:
at most `per_turn` begin in one turn, at most `in_flight` are under way (a busy client answers
many close frames together, and their ends would all land in one turn), the others wait, in the
order they came. And after a turn of `BUSY_TURN` seconds or more none begins, unless none has
begun for `MAX_DEFER` seconds: a handshake's follow-up (the peer's frame, the socket's removal
and close, about 200 µs) then waits for quieter turns instead of lengthening the busy ones,
in which live streams' events are due.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator

from taskcast.runtime.slices import BUSY_TURN_SECONDS

#: close handshakes that may begin in one turn of the loop; the rest wait for later turns
CLOSES_PER_TURN = 1
#: close handshakes under way at once: the peers' answers come back together when a client is
#: busy, and this bounds how many the loop then finishes in one turn
CLOSES_IN_FLIGHT = 8
#: a turn of the loop this long or longer lets no handshake begin in the next one (the runner's
#: threshold for finishing ends, so that both hold back in the same turns)...
BUSY_TURN = BUSY_TURN_SECONDS
#: ... unless none has begun for this long
MAX_DEFER = 0.1


class ClosePacer:
    """Lets callers of `closing()` in at most `per_turn` per turn of the loop and at most
    `in_flight` at a time, first come first served."""

    __slots__ = (
        "_admitted",
        "_in_flight",
        "_last_admitted",
        "_last_turn",
        "_refill",
        "_waiting",
        "in_flight",
        "per_turn",
    )

    def __init__(self, per_turn: int = CLOSES_PER_TURN, in_flight: int = CLOSES_IN_FLIGHT) -> None:
        if per_turn < 1 or in_flight < 1:
            raise ValueError(
                f"per_turn and in_flight must be at least 1, not {per_turn} and {in_flight}"
            )
        self.per_turn = per_turn
        self.in_flight = in_flight
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._admitted = 0  # let in during this turn
        self._in_flight = 0  # let in and not finished
        self._refill: asyncio.Handle | None = None
        self._last_turn: float | None = None  # when `_next_turn` ran, while it runs each turn
        self._last_admitted = -float("inf")  # when a handshake last began

    @property
    def waiting(self) -> int:
        """Callers waiting for their turn (a cancelled one counts until its turn comes)."""
        return len(self._waiting)

    @property
    def closing_now(self) -> int:
        """Callers let in whose close has not finished."""
        return self._in_flight

    @contextlib.asynccontextmanager
    async def closing(self) -> AsyncIterator[None]:
        """Wait for this close's turn (none while there is room), and hold its place until the
        block is left."""
        await self._enter()
        try:
            yield
        finally:
            self._leave()

    def _has_room(self) -> bool:
        return self._admitted < self.per_turn and self._in_flight < self.in_flight

    async def _enter(self) -> None:
        if not self._waiting and self._has_room():
            self._admitted += 1
            self._in_flight += 1
            self._last_admitted = time.perf_counter()
            self._schedule_refill()
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self._schedule_refill()
        try:
            await future
        except asyncio.CancelledError:
            # Cancelled while waiting: its future is cancelled and will be passed over. Let in,
            # then cancelled before it ran: the place it was given is given back.
            if future.done() and not future.cancelled():
                self._leave()
            raise

    def _leave(self) -> None:
        self._in_flight -= 1
        if self._waiting:
            self._schedule_refill()

    def _schedule_refill(self) -> None:
        if self._refill is None:
            self._refill = asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        """A new turn: let in the next waiters while there is room, and come back while any were
        let in (this turn's count must start again from nothing) or any wait with room for
        them; with no room, the next close to finish brings it back."""
        self._refill = None
        self._admitted = 0
        now = time.perf_counter()
        last_turn, self._last_turn = self._last_turn, now
        waiting = self._waiting
        if (
            waiting
            and last_turn is not None
            and now - last_turn >= BUSY_TURN
            and now - self._last_admitted < MAX_DEFER
        ):
            self._schedule_refill()  # a busy turn: look again in the next one
            return
        while waiting and self._has_room():
            future = waiting.popleft()
            if not future.done():
                future.set_result(None)
                self._admitted += 1
                self._in_flight += 1
                self._last_admitted = now
        if self._admitted or (waiting and self._in_flight < self.in_flight):
            self._schedule_refill()
        else:
            self._last_turn = None  # not every turn: the next call measures no turn

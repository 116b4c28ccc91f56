"""The garbage collector's settings for a long-running server: thresholds set on purpose, and
what start-up built frozen out of every later collection.

A full collection walks every object the collector tracks, so its pause grows with what the
server holds: modules, classes, functions, the app's routes and templates (built once, alive
for the whole run), and each live stream's objects. `gc.freeze()` moves everything alive at
that moment into a permanent generation that no collection walks again, so start-up's objects
stop costing a pause. The thresholds: see docs/operations.md for the figures and why.

Python starts a young collection when allocations *minus deallocations* reach the first
threshold, and a deallocation of an old object counts too. Thousands of tasks that each sleep a
second at a time make a new future, timer and coroutine per sleep while the previous ones, old
by then, die: the count stays flat, the young generation grows past 100,000 objects, and its
collection stops the loop for 25 to 50 ms. So the tuning also collects the young generation on
a timer, every `YOUNG_EVERY` seconds, which keeps it to that much time's allocations. When a
young collection takes longer than `YOUNG_PAUSE` (thousands of streams ending together leave
that many young objects alive), the next one comes after half the interval, down to
`YOUNG_EVERY_MIN`, so the pause is cut in pieces; quick ones let the interval grow back.

`tune()` is called once start-up has completed, and `Tuning.undo()` at cleanup puts the
thresholds back and unfreezes, so a process that builds several servers (tests, a host that
restarts its app) does not keep each one's start-up objects for ever. Plain Python: it never
imports aiohttp.web.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

__all__ = ["YOUNG_EVERY", "YOUNG_EVERY_MIN", "YOUNG_PAUSE", "Tuning", "tune"]

logger = logging.getLogger(__name__)


#: seconds between the young collections the tuning makes on its timer, at most
YOUNG_EVERY = 0.1
#: ... and at least, when each one takes long
YOUNG_EVERY_MIN = 0.0125
#: a young collection longer than this halves the interval before the next; one shorter than a
#: quarter of it doubles the interval back, up to `YOUNG_EVERY`
YOUNG_PAUSE = 0.001


class Tuning:
    """The collector's thresholds before `tune()`, to put back with `undo()`, and the timer of
    its young collections."""

    __slots__ = ("_collect", "_every", "_loop", "_timer", "frozen", "interval", "previous")

    def __init__(
        self,
        previous: tuple[int, int, int],
        frozen: int,
        loop: asyncio.AbstractEventLoop,
        every: float,
        collect: Callable[[int], object] = gc.collect,
    ) -> None:
        self.previous = previous
        #: objects moved to the permanent generation
        self.frozen = frozen
        self._loop = loop
        self._every = every
        self._collect = collect
        #: seconds until the young collection after the next one (see the module)
        self.interval = every
        self._timer: asyncio.TimerHandle | None = loop.call_later(every, self._collect_young)

    def _collect_young(self) -> None:
        began = time.perf_counter()
        self._collect(0)
        took = time.perf_counter() - began
        if took > YOUNG_PAUSE:
            self.interval = max(min(YOUNG_EVERY_MIN, self._every), self.interval / 2)
        elif took < YOUNG_PAUSE / 4:
            self.interval = min(self._every, self.interval * 2)
        self._timer = self._loop.call_later(self.interval, self._collect_young)

    def undo(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gc.unfreeze()
        gc.set_threshold(*self.previous)


def tune(thresholds: tuple[int, int, int], young_every: float = YOUNG_EVERY) -> Tuning:
    """Collect what start-up left behind, freeze what is alive, set `thresholds`, and collect
    the young generation every `young_every` seconds on the running loop until `undo()`."""
    loop = asyncio.get_running_loop()
    previous = gc.get_threshold()
    began = time.perf_counter()
    # What start-up left as garbage would otherwise be frozen with the rest and never freed.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    frozen = gc.get_freeze_count()
    logger.info(
        "garbage collector: %d start-up objects frozen in %.0f ms; thresholds %s (were %s)",
        frozen,
        (time.perf_counter() - began) * 1000,
        thresholds,
        previous,
    )
    return Tuning(previous, frozen, loop, young_every)

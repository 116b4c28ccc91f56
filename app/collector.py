"""The garbage collector's settings for a long-running server: thresholds set on purpose, and
what start-up built frozen out of every later collection.

A full collection walks every object the collector tracks, so its pause grows with what the
server holds: modules, classes, functions, the app's routes and templates (built once, alive
for the whole run), and each live stream's objects. `gc.freeze()` moves everything alive at
that moment into a permanent generation that no collection walks again, so start-up's objects
stop costing a pause. The thresholds: see docs/operations.md for the figures and why.

`tune()` is called once start-up has completed, and `Tuning.undo()` at cleanup puts the
thresholds back and unfreezes, so a process that builds several servers (tests, a host that
restarts its app) does not keep each one's start-up objects for ever. Plain Python: it never
imports aiohttp.web.
"""

from __future__ import annotations

import gc
import logging
import time

__all__ = ["Tuning", "tune"]

logger = logging.getLogger(__name__)


class Tuning:
    """The collector's thresholds before `tune()`, to put back with `undo()`."""

    __slots__ = ("frozen", "previous")

    def __init__(self, previous: tuple[int, int, int], frozen: int) -> None:
        self.previous = previous
        #: objects moved to the permanent generation
        self.frozen = frozen

    def undo(self) -> None:
        gc.unfreeze()
        gc.set_threshold(*self.previous)


def tune(thresholds: tuple[int, int, int]) -> Tuning:
    """Collect what start-up left behind, freeze what is alive, and set `thresholds`."""
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
    return Tuning(previous, frozen)

"""The runs waiting for their turn, and the limits that decide which one may start next.

`RunQueue` is the runner's one seam toward another engine: an engine that spreads the runs over
several processes (a shared queue in Redis, say) implements this surface again, and the runner's
lifecycle of records stays as it is. Its surface:

- `put(run)`: a run waits, behind every run of its kind put before it;
- `put_later(run, delay)`: a run waits again after `delay` seconds (a retry), then `on_ready`;
- `next_ready()`: the oldest waiting run that may start now, counted as running from then on
  (None when the limits allow none);
- `ended(run)`: a run that `next_ready` handed out has ended its attempt;
- `remove(run)`: a run waiting now or later leaves the queue without starting (cancelled);
- `drain()`: every waiting run leaves the queue (the runner is closing);
- `len(queue)` waiting runs, `running` runs handed out and not yet ended, `load()` both per kind
  with each kind's limit.

The limits, one per kind: at most `max_async` async runs at once; a thread task only while fewer
than `thread_workers` threads are busy; a process task only when a worker of the pool is free, and
that worker is taken for it the moment it is picked. On top of them, if set, at most
`max_concurrency` runs at once whatever their kind. A kind whose runs wait because of a limit is
logged once when they start waiting and once when none waits any more, not once per run.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from taskcast.runtime.execution import Run
from taskcast.runtime.pool import ProcessPool
from taskcast.spec import Kind

__all__ = ["KindLoad", "RunQueue"]

logger = logging.getLogger(__name__)

KINDS: tuple[Kind, ...] = ("async", "thread", "process")

#: the setting and the command's flag that raise each limit ("all": the overall one), for the
#: log line and the console's word when tasks wait for one
LIMIT_SETTINGS: dict[str, tuple[str, str]] = {
    "async": ("max_async_tasks", "--max-async"),
    "thread": ("thread_workers", "--threads"),
    "process": ("process_workers", "--workers"),
    "all": ("max_concurrency", "--max-concurrency"),
}


@dataclasses.dataclass(frozen=True, slots=True)
class KindLoad:
    """One kind's runs now: its limit, how many run, how many wait, and whether they wait
    because of a limit (the kind's own, or `max_concurrency`) rather than for their turn."""

    limit: int
    running: int
    waiting: int
    held: bool

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class RunQueue:
    """One FIFO of waiting runs per kind, each under its kind's limit; see the module docstring."""

    def __init__(
        self,
        max_async: int,
        thread_workers: int,
        pool: ProcessPool,
        threads_busy: Callable[[], int],
        on_ready: Callable[[], None],
        max_concurrency: int | None = None,
    ) -> None:
        self._max_async = max_async
        self._thread_workers = thread_workers
        self._max_concurrency = max_concurrency
        self._pool = pool
        self._threads_busy = threads_busy
        self._on_ready = on_ready
        # One FIFO per kind, so a kind whose resource is exhausted does not hold up the others;
        # across kinds the oldest (lowest `order`) goes first.
        self._waiting: dict[Kind, collections.deque[Run]] = {
            kind: collections.deque() for kind in KINDS
        }
        self._running = 0
        self._running_by_kind: dict[Kind, int] = dict.fromkeys(KINDS, 0)
        self._later: dict[Run, asyncio.TimerHandle] = {}
        #: the kinds whose runs wait because of a limit, as last logged
        self._held: set[str] = set()

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._waiting.values())

    @property
    def running(self) -> int:
        return self._running

    def put(self, run: Run) -> None:
        self._waiting[run.spec.kind].append(run)

    def put_later(self, run: Run, delay: float) -> None:
        """Put `run` after `delay` seconds, then call `on_ready` (loop thread only)."""

        def put() -> None:
            del self._later[run]
            self.put(run)
            self._on_ready()

        self._later[run] = asyncio.get_running_loop().call_later(delay, put)

    def next_ready(self) -> Run | None:
        if self._max_concurrency is not None and self._running >= self._max_concurrency:
            self._note_held()
            return None
        best: Run | None = None
        for kind, waiting in self._waiting.items():
            if not waiting or not self._has_room(kind):
                continue
            if best is None or waiting[0].order < best.order:
                best = waiting[0]
        if best is None:
            self._note_held()
            return None
        kind = best.spec.kind
        self._waiting[kind].popleft()
        if kind == "process":
            # Taken now, not when the task's coroutine first runs, so the next pick sees it.
            best.slot = self._pool.acquire()
        self._running += 1
        self._running_by_kind[kind] += 1
        return best

    def ended(self, run: Run) -> None:
        self._running -= 1
        self._running_by_kind[run.spec.kind] -= 1

    def remove(self, run: Run) -> None:
        """Take out a run waiting now or after a delay; nothing if it is not waiting."""
        later = self._later.pop(run, None)
        if later is not None:
            later.cancel()
        waiting = self._waiting[run.spec.kind]
        if run in waiting:
            waiting.remove(run)

    def drain(self) -> list[Run]:
        """Every run waiting now, taken out of the queue (not those put for later)."""
        runs = [run for waiting in self._waiting.values() for run in waiting]
        for waiting in self._waiting.values():
            waiting.clear()
        return runs

    def load(self) -> dict[str, KindLoad]:
        """Per kind: its limit, its runs running and waiting, and whether a limit holds them."""
        limits = {
            "async": self._max_async,
            "thread": self._thread_workers,
            "process": self._pool.size,
        }
        return {
            kind: KindLoad(
                limits[kind],
                self._running_by_kind[kind],
                len(self._waiting[kind]),
                bool(self._waiting[kind]) and not self._room_overall(kind),
            )
            for kind in KINDS
        }

    def _has_room(self, kind: Kind) -> bool:
        if kind == "process":
            return self._pool.free > 0
        if kind == "thread":
            return self._threads_busy() < self._thread_workers
        return self._running_by_kind["async"] < self._max_async

    def _room_overall(self, kind: Kind) -> bool:
        if self._max_concurrency is not None and self._running >= self._max_concurrency:
            return False
        return self._has_room(kind)

    def _note_held(self) -> None:
        """Log a kind whose runs start waiting because of a limit, and one whose wait is over.

        Called when no run may start, so at most once per round of starts, never per run."""
        overall = self._max_concurrency is not None and self._running >= self._max_concurrency
        for kind, waiting in self._waiting.items():
            held = bool(waiting) and (overall or not self._has_room(kind))
            if held and kind not in self._held:
                self._held.add(kind)
                which = "all" if overall and self._has_room(kind) else kind
                logger.warning(
                    "%s tasks are waiting for a free place: %d running, %d waiting; the limit "
                    "is %s (%s)",
                    kind,
                    self._running_by_kind[kind],
                    len(waiting),
                    *LIMIT_SETTINGS[which],
                )
            elif not waiting and kind in self._held:
                self._held.discard(kind)
                logger.info("%s tasks no longer wait for a limit", kind)

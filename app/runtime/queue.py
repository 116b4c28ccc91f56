"""The runs waiting for their turn, and the limits that decide which one may start next.

`RunQueue` is the runner's one seam toward another engine: an engine that spreads the runs over
several processes (a shared queue in Redis, say) implements this surface again, and the runner's
lifecycle of records stays as it is. Its surface:

- `put(run)`: a run waits, behind every run of its kind put before it;
- `put_later(run, delay)`: a run waits again after `delay` seconds (a retry), then `on_ready`;
- `next_ready()`: the oldest waiting run that may start now, counted as running from then on
  (None when the limits allow none);
- `ended()`: a run that `next_ready` handed out has ended its attempt;
- `remove(run)`: a run waiting now or later leaves the queue without starting (cancelled);
- `drain()`: every waiting run leaves the queue (the runner is closing);
- `len(queue)` waiting runs, `running` runs handed out and not yet ended.

The limits: at most `max_concurrency` runs at once, whatever their kind; a thread task only
while fewer than `thread_workers` threads are busy; a process task only when a worker of the
pool is free, and that worker is taken for it the moment it is picked.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from taskcast.runtime.execution import Run
from taskcast.runtime.pool import ProcessPool
from taskcast.spec import Kind

__all__ = ["RunQueue"]


class RunQueue:
    """One FIFO of waiting runs per kind under one concurrency limit; see the module docstring."""

    def __init__(
        self,
        max_concurrency: int,
        thread_workers: int,
        pool: ProcessPool,
        threads_busy: Callable[[], int],
        on_ready: Callable[[], None],
    ) -> None:
        self._max_concurrency = max_concurrency
        self._thread_workers = thread_workers
        self._pool = pool
        self._threads_busy = threads_busy
        self._on_ready = on_ready
        # One FIFO per kind, so a kind whose resource is exhausted does not hold up the others;
        # across kinds the oldest (lowest `order`) goes first.
        self._waiting: dict[Kind, collections.deque[Run]] = {
            "async": collections.deque(),
            "thread": collections.deque(),
            "process": collections.deque(),
        }
        self._running = 0
        self._later: dict[Run, asyncio.TimerHandle] = {}

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
        if self._running >= self._max_concurrency:
            return None
        best: Run | None = None
        for kind, waiting in self._waiting.items():
            if not waiting or not self._has_room(kind):
                continue
            if best is None or waiting[0].order < best.order:
                best = waiting[0]
        if best is None:
            return None
        self._waiting[best.spec.kind].popleft()
        if best.spec.kind == "process":
            # Taken now, not when the task's coroutine first runs, so the next pick sees it.
            best.slot = self._pool.acquire()
        self._running += 1
        return best

    def ended(self) -> None:
        self._running -= 1

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

    def _has_room(self, kind: Kind) -> bool:
        if kind == "process":
            return self._pool.free > 0
        if kind == "thread":
            return self._threads_busy() < self._thread_workers
        return True

"""The writes kept in memory while the database cannot be written, and when to try again.

A failure of the database as a whole (disk full, file locked, I/O error) is an outage: the
writes that failed stay here, in order, and new ones join them; the writer retries with a delay
that doubles up to a ceiling. Their memory is bounded: past `max_bytes`, events go first (a lost
event shows as a gap after a restart), then task records a newer one replaces, then the oldest.
Every method expects the caller to hold the writer's lock.
"""

from __future__ import annotations

import collections
import itertools
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator

from taskcast.store.ops import AppendEvents, Op, SaveTask

logger = logging.getLogger(__name__)

# Primary SQLite result codes that concern the database as a whole, not one write: the same write
# will succeed once the condition passes (busy/locked, out of memory, read-only, I/O error,
# corrupt, disk full, cannot open, lock protocol, not a database).
_OUTAGE_CODES = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})


def is_outage(exc: BaseException) -> bool:
    """Whether the error concerns the database as a whole, not the write that met it."""
    if isinstance(exc, MemoryError | OSError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _OUTAGE_CODES


def writes(ops: Iterable[Op]) -> int:
    """How many writes the operations make: each event counts as one."""
    return sum(op.writes for op in ops)


class Outage:
    """The kept writes, what they weigh, and the retry schedule."""

    def __init__(self, path: str, retry_delay: float, max_retry_delay: float, max_bytes: int):
        self._path = path  # for the log
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self.max_bytes = max_bytes
        self._kept: collections.deque[Op] = collections.deque()
        self._bytes = 0
        self._events: collections.Counter[str] = collections.Counter()  # run id -> kept ops
        self._retry_at = 0.0
        self._next_delay = retry_delay
        self.since: float | None = None  # when the outage began; None while writing works

    def __bool__(self) -> bool:
        return bool(self._kept)

    def __iter__(self) -> Iterator[Op]:
        return iter(self._kept)

    def first(self, count: int) -> list[Op]:
        """The oldest kept writes, left in place: readers see them until they commit."""
        return list(itertools.islice(self._kept, count))

    def retry_in(self, now: float) -> float:
        return self._retry_at - now

    def join(self, ops: Iterable[Op]) -> None:
        """New writes join the kept ones, at the end."""
        for op in ops:
            self._kept.append(op)
            self._count(op, 1)

    def put_back(self, ops: list[Op]) -> None:
        """Writes of a failed batch, ahead of those kept since: the order stays."""
        for op in reversed(ops):
            self._kept.appendleft(op)
            self._count(op, 1)

    def drop_first(self, count: int) -> None:
        """The oldest kept writes were tried again; what became of them is accounted elsewhere."""
        for _ in range(count):
            self._count(self._kept.popleft(), -1)

    def clear(self) -> list[Op]:
        ops = list(self._kept)
        self._kept.clear()
        self._bytes = 0
        self._events.clear()
        return ops

    def _count(self, op: Op, sign: int) -> None:
        self._bytes += sign * op.weight
        if isinstance(op, AppendEvents):
            self._events[op.run_id] += sign
            if self._events[op.run_id] <= 0:
                del self._events[op.run_id]

    def events(self, run_id: str, after: int) -> dict[int, str]:
        """The kept events of a run with seq > after."""
        if not self._events[run_id]:
            return {}
        return {
            seq: data
            for op in self._kept
            if isinstance(op, AppendEvents) and op.run_id == run_id
            for seq, data in op.chunk.events(after)
        }

    def failed(self, reason: str) -> None:
        """A batch failed for the database as a whole: log it, and schedule the next try."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
            logger.error(
                "store: cannot write to %s: %s; %d writes are kept in memory and retried",
                self._path,
                reason,
                writes(self._kept),
            )
        else:
            logger.debug("store: retry failed (%s); %d writes kept", reason, writes(self._kept))
        self._retry_at = now + self._next_delay
        self._next_delay = min(self._next_delay * 2, self._max_retry_delay)

    def succeeded(self) -> None:
        """Writes committed: the next outage starts over with the first delay."""
        self._next_delay = self._retry_delay
        if self.since is not None and not self._kept:
            logger.warning(
                "store: writing to %s works again after %.1f s; the kept writes are saved",
                self._path,
                time.monotonic() - self.since,
            )
            self.since = None

    def over_bound(self, superseded: Callable[[SaveTask], bool]) -> list[Op]:
        """Past max_bytes, take kept writes out down to 3/4 of it: events and task records that
        a newer record of the same task replaces first, then the oldest task records."""
        if self._bytes <= self.max_bytes:
            return []
        target = self.max_bytes * 3 // 4
        dropped: list[Op] = []
        for cheap_first in (True, False):
            remaining: collections.deque[Op] = collections.deque()
            for op in self._kept:
                droppable = isinstance(op, AppendEvents) or (
                    isinstance(op, SaveTask) and (not cheap_first or superseded(op))
                )
                if droppable and self._bytes > target:
                    self._count(op, -1)
                    dropped.append(op)
                else:
                    remaining.append(op)
            self._kept = remaining
            if self._bytes <= target:
                break
        return dropped

"""Committing one batch of the writer's operations: in one transaction and, when that fails,
in halves until the failing write stands alone, so one bad write never costs the others. A
failure of the database as a whole (a full disk, a lost file: `outage.is_outage`) stops the
search instead: halving would only fail again, and the writer keeps the rest for a retry.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

from taskcast.store.ops import Op
from taskcast.store.outage import is_outage

logger = logging.getLogger(__name__)

#: makes a batch's writes in one transaction on the connection (`Store._apply`)
Apply = Callable[[sqlite3.Connection, list[Op]], None]


class Outcome:
    """What became of the operations of one batch."""

    __slots__ = ("committed", "given_up", "kept", "outage")

    def __init__(self) -> None:
        self.committed: list[Op] = []
        #: each write that failed alone, with why
        self.given_up: list[tuple[Op, str]] = []
        #: with an outage: the writes not committed, to keep for a retry
        self.kept: list[Op] = []
        self.outage: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.outage or self.given_up)


def commit_batch(
    conn: sqlite3.Connection, conn_lock: threading.Lock, apply: Apply, batch: list[Op]
) -> Outcome:
    """Commit a batch; on a failure, find what failed by committing smaller parts."""
    outcome = Outcome()
    parts = [batch]
    while parts:
        part = parts.pop(0)
        error = _commit(conn, conn_lock, apply, part)
        if error is None:
            outcome.committed += part
        elif is_outage(error):
            outcome.outage = f"{error}"
            outcome.kept = [op for rest in (part, *parts) for op in rest]
            break
        elif len(part) == 1:
            outcome.given_up.append((part[0], f"{error}"))
        else:
            middle = len(part) // 2
            parts[:0] = [part[:middle], part[middle:]]
    return outcome


def _commit(
    conn: sqlite3.Connection, conn_lock: threading.Lock, apply: Apply, batch: list[Op]
) -> BaseException | None:
    with conn_lock:
        try:
            apply(conn, batch)
            return None
        except Exception as exc:  # the writer must survive anything
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite already rolled back, or BEGIN itself failed
            if not isinstance(exc, sqlite3.Error | MemoryError | OSError):
                logger.debug("store: a batch failed", exc_info=True)
            return exc

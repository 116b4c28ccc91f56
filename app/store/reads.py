"""The store's reads: task records and stream events from the readers' connection, merged with
the writes that are still queued or kept in memory.

Reads are quick indexed queries on their own connection. They see writes that are still queued:
`get_task` and `latest_run` through an overlay of the pending task records (`pending.py`),
`list_tasks` and `count_tasks` by flushing first when task records are pending, and `events` by
flushing first when that run has pending event writes (replay after a restart, its main use,
never waits). In an outage, `events` adds the events kept in memory to the file's.

A value SQLite cannot hold as text (a lone surrogate) matches nothing stored: the read gives
what an empty result gives instead of an error.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from taskcast.errors import StoreError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.store import browse, chunks
from taskcast.store.outage import Outage
from taskcast.store.pending import Pending
from taskcast.store.rows import COLUMNS, NEVER, NEWEST, record_from_row, status_value
from taskcast.store.writer import Writer

__all__ = ["Reads", "within"]

_T = TypeVar("_T")


class Reads:
    """The reads of one store; `connection` is set while the store is open."""

    def __init__(
        self,
        writer: Writer,
        pending: Pending,
        outage: Outage,
        lock: threading.Lock,
        flush: Callable[[], None],
    ) -> None:
        self.connection: sqlite3.Connection | None = None
        self._writer = writer
        self._pending = pending
        self._outage = outage
        self._lock = lock  # the readers' connection's; the writer's lock guards the overlay
        self._flush = flush

    def _open_connection(self) -> sqlite3.Connection:
        """The readers' connection, or StoreError; the caller holds `_lock`."""
        if self.connection is None:
            closed = self._writer.state == "closed"
            raise StoreError(f"store is {'closed' if closed else 'not open'}")
        return self.connection

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            connection = self._open_connection()
            try:
                return connection.execute(sql, params).fetchall()
            except UnicodeEncodeError:
                return []

    def _read(self, reader: Callable[..., _T], *args: Any, empty: _T) -> _T:
        """`reader(connection, *args)` on the readers' connection; `empty` when a value is
        text SQLite cannot hold."""
        with self._lock:
            connection = self._open_connection()
            try:
                return reader(connection, *args)
            except UnicodeEncodeError:
                return empty

    # -- task records --------------------------------------------------------------------------

    def get_task(self, id_or_name: str) -> TaskRecord | None:
        with self._writer.lock:
            pending = self._pending.record(id_or_name)
        if pending is not None:
            return pending
        # Overlay entries leave only after their commit, so a miss there means the file has it.
        rows = self._query(f"SELECT {COLUMNS} FROM tasks WHERE id = ?", (id_or_name,))
        if rows:
            return record_from_row(rows[0])
        return self.newest("name", id_or_name)

    def newest(self, field: str, value: str) -> TaskRecord | None:
        """The newest task whose `field` holds `value`, queued or stored."""
        with self._writer.lock:
            pending = self._pending.matching(field, value)
        rows = self._query(
            f"SELECT {COLUMNS} FROM tasks WHERE {field} = ? {NEWEST} LIMIT 1", (value,)
        )
        candidates = list(pending.values())  # first, so that they win ties
        candidates += [r for r in map(record_from_row, rows) if r.id not in pending]
        return max(candidates, key=lambda r: r.enqueued or NEVER, default=None)

    def _where(self, **filters: str | None) -> tuple[str, list[str]]:
        """A WHERE clause for the filters that are not None, after committing pending records:
        listings and counts flush instead of merging the overlay into SQL results. In an outage
        they do not wait for the disk: they show what the file has."""
        with self._writer.lock:
            pending = self._pending.has_records and self._outage.since is None
        if pending:
            self._flush()
        used = {column: value for column, value in filters.items() if value is not None}
        clauses = " AND ".join(f"{column} = ?" for column in used)
        return (f" WHERE {clauses}" if clauses else ""), list(used.values())

    def list_tasks(
        self,
        *,
        group: str | None,
        status: TaskStatus | None,
        func: str | None,
        stream_id: str | None,
        schedule: str | None,
        started_by: str | None,
        limit: int,
        offset: int,
    ) -> list[TaskRecord]:
        where, params = self._where(
            group_name=group,
            status=status_value(status),
            func=func,
            stream_id=stream_id,
            schedule=schedule,
            started_by=started_by,
        )
        rows = self._query(
            f"SELECT {COLUMNS} FROM tasks{where} {NEWEST} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [record_from_row(row) for row in rows]

    def count_tasks(
        self,
        *,
        group: str | None,
        status: TaskStatus | None,
        func: str | None,
        started_by: str | None,
    ) -> int:
        where, params = self._where(
            group_name=group, status=status_value(status), func=func, started_by=started_by
        )
        rows = self._query(f"SELECT COUNT(*) FROM tasks{where}", params)
        count: int = rows[0][0] if rows else 0  # no row: text SQLite cannot hold matches none
        return count

    def search_tasks(
        self,
        query: browse.Search,
        *,
        group: str | None,
        status: TaskStatus | None,
        func: str | None,
        started_by: str | None,
        limit: int,
        offset: int,
    ) -> tuple[list[TaskRecord], int]:
        where, params = self._where(
            group_name=group, status=status_value(status), func=func, started_by=started_by
        )
        empty: tuple[list[TaskRecord], int] = ([], 0)
        return self._read(browse.search, where, params, query, limit, offset, empty=empty)

    def function_stats(self, since: datetime, started_by: str | None) -> list[browse.FunctionStats]:
        self._where()  # commits pending records first, like the listings
        return self._read(browse.function_stats, since, started_by, empty=[])

    def count_purgeable(self, before: datetime, started_by: str | None) -> int:
        self._where()
        return self._read(browse.count_purgeable, before, started_by, empty=0)

    # -- events --------------------------------------------------------------------------------

    def events(
        self, run_id: str, after: int, limit: int | None, max_bytes: int | None
    ) -> list[tuple[int, str]]:
        with self._writer.lock:
            pending = self._pending.has_events(run_id)
        if pending:
            self._flush()
        with self._writer.lock:
            kept = self._outage.events(run_id, after)
        events = self._read_events(run_id, after, None if kept else limit, max_bytes)
        if kept:
            events = sorted((dict(events) | kept).items())  # kept writes are newer than the file's
        events = events if limit is None else events[:limit]
        return events if max_bytes is None else within(events, max_bytes)

    def _read_events(
        self, run_id: str, after: int, limit: int | None, max_bytes: int | None
    ) -> list[tuple[int, str]]:
        """Read row by row, stopping once `limit` events or `max_bytes` are in."""
        with self._lock:
            connection = self._open_connection()
            # Every row holds at least one event: `limit` rows hold at least `limit` events.
            try:
                cursor = connection.execute(
                    chunks.SELECT_AFTER, (run_id, after, -1 if limit is None else limit)
                )
            except UnicodeEncodeError:
                return []
            rows: list[tuple[int, int, str]] = []
            size = 0
            while max_bytes is None or size < max_bytes:
                row = cursor.fetchone()
                if row is None:
                    break
                rows.append(row)
                size += len(row[2])
            cursor.close()
        return chunks.read(rows, after)


def within(events: list[tuple[int, str]], max_bytes: int) -> list[tuple[int, str]]:
    """The first events whose data fits in `max_bytes`, and always the first one."""
    size = 0
    for index, (_, data) in enumerate(events):
        size += len(data)
        if size > max_bytes and index:
            return events[:index]
    return events

"""The schedules table and the records of skipped runs, in the task store's SQLite file.

The store has its own connection and every method blocks, so the scheduler calls them through
`run`, which hands them to the store's single thread: writes stay in the order they were made
and the event loop never waits on the disk. With ":memory:" the schedules live in a private
in-memory database, shared with nothing: they last as long as the process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import pickle
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from taskcast.schedules.calendar import rule_from_json
from taskcast.schedules.entry import ScheduleEntry

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY, func TEXT NOT NULL, rule TEXT NOT NULL, args BLOB NOT NULL,
    kwargs BLOB NOT NULL, q_options BLOB NOT NULL, repeats INTEGER NOT NULL,
    catch_up TEXT NOT NULL, overlap TEXT NOT NULL, backlog INTEGER NOT NULL,
    intended_date_kwarg TEXT, origin TEXT NOT NULL, paused INTEGER NOT NULL,
    next_run TEXT, last_run TEXT, last_task TEXT, last_skip TEXT
);
CREATE TABLE IF NOT EXISTS schedule_skips (
    schedule TEXT NOT NULL, due TEXT NOT NULL, recorded TEXT NOT NULL, reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS schedule_skips_by_schedule ON schedule_skips (schedule, due);
"""
_FIELDS = tuple(field.name for field in dataclasses.fields(ScheduleEntry))
_COLUMNS = ", ".join(_FIELDS)  # the table's columns are the entry's fields, in order
_PICKLED = ("args", "kwargs", "q_options")
_TIMES = ("next_run", "last_run")


@dataclasses.dataclass(frozen=True)
class Skip:
    """A run that was due and did not start, and why."""

    schedule: str
    due: datetime
    recorded: datetime
    reason: str


def _time(value: datetime | None) -> str | None:
    # UTC in one fixed format, so that the text sorts as the times do.
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _row(entry: ScheduleEntry) -> tuple[Any, ...]:
    values = {field: getattr(entry, field) for field in _FIELDS}
    values["rule"] = json.dumps(entry.rule.to_json())
    values["paused"] = int(entry.paused)
    values.update({field: pickle.dumps(values[field]) for field in _PICKLED})
    values.update({field: _time(values[field]) for field in _TIMES})
    return tuple(values.values())


def _entry(row: Sequence[Any]) -> ScheduleEntry:
    values = dict(zip(_FIELDS, row, strict=True))
    values["rule"] = rule_from_json(json.loads(values["rule"]))
    values["paused"] = bool(values["paused"])
    values.update({field: pickle.loads(values[field]) for field in _PICKLED})
    values.update({field: _parse(values[field]) for field in _TIMES})
    return ScheduleEntry(**values)


class ScheduleStore:
    """Schedules and skipped runs in one SQLite file (or a private ":memory:" database)."""

    def __init__(self, path: str | os.PathLike[str], *, kept_skips: int = 100) -> None:
        self._path = os.fspath(path)
        self._kept_skips = kept_skips
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="taskcast-schedules")

    def submit(self, method: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue a blocking method for the store's thread now (calls run in the order queued)."""
        return asyncio.get_running_loop().run_in_executor(self._thread, method, *args)

    async def run(self, method: Callable[..., T], *args: Any) -> T:
        """Call a blocking method on the store's thread, after those queued before, and await it."""
        return await self.submit(method, *args)

    def open(self) -> None:
        memory = self._path == ":memory:"
        if not memory:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self._path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        try:
            if not memory:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except sqlite3.Error:
            conn.close()
            raise
        self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def shutdown(self) -> None:
        """Close the connection and stop the store's thread (after the calls already queued)."""
        self._thread.submit(self.close)
        self._thread.shutdown(wait=True)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            if self._conn is None:
                raise sqlite3.ProgrammingError("the schedule store is not open")
            return self._conn.execute(sql, params).fetchall()

    def load(self) -> list[ScheduleEntry]:
        """Every stored schedule; a row that cannot be read is logged and left out."""
        entries = []
        for row in self._execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY name"):
            try:
                entries.append(_entry(row))
            except Exception as exc:
                logger.error("schedule %r cannot be read and is ignored: %s", row[0], exc)
        return entries

    def save(self, entry: ScheduleEntry) -> None:
        self._execute(
            f"INSERT OR REPLACE INTO schedules ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})",
            _row(entry),
        )

    def delete(self, name: str) -> None:
        self._execute("DELETE FROM schedules WHERE name = ?", (name,))
        self._execute("DELETE FROM schedule_skips WHERE schedule = ?", (name,))

    def add_skip(self, skip: Skip) -> None:
        """Record a skipped run, keeping the newest `kept_skips` of its schedule."""
        self._execute(
            "INSERT INTO schedule_skips VALUES (?, ?, ?, ?)",
            (skip.schedule, _time(skip.due), _time(skip.recorded), skip.reason),
        )
        self._execute(
            "DELETE FROM schedule_skips WHERE schedule = ?1 AND rowid NOT IN (SELECT rowid "
            "FROM schedule_skips WHERE schedule = ?1 ORDER BY due DESC, rowid DESC LIMIT ?2)",
            (skip.schedule, self._kept_skips),
        )

    def skips(self, name: str, limit: int = 20) -> list[Skip]:
        """The newest skipped runs of a schedule, newest first."""
        rows = self._execute(
            "SELECT schedule, due, recorded, reason FROM schedule_skips WHERE schedule = ? "
            "ORDER BY due DESC, rowid DESC LIMIT ?",
            (name, limit),
        )
        return [
            Skip(row[0], datetime.fromisoformat(row[1]), datetime.fromisoformat(row[2]), row[3])
            for row in rows
        ]

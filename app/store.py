"""SQLite persistence of task records and of the events of each task's stream.

The store owns the database file, so that `fetch()`, `result()` and the replay of a stream still
work after the server restarts. It is called from the asyncio event loop thread, so writes never
block: `save_task`, `append_event` and `trim_events` only put an operation on a queue, and one
writer thread commits that queue in batches, one transaction per batch.

Reads are quick indexed queries on their own connection. They see writes that are still queued:
`get_task` and `latest_run` through an overlay of the pending task records, `list_tasks` and
`count_tasks` by flushing first when task records are pending, and `events` by flushing first
when that run has pending event writes (replay after a restart, its main use, never waits).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import pickle
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.errors import StoreError
from app.records import TaskRecord, TaskStatus

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
INTERRUPTED_ERROR = "interrupted: the server stopped before the task finished"
_PROTOCOL = 5
_REPR_LIMIT = 10_000  # args stored as their repr are cut to this many characters
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NEVER = datetime.min.replace(tzinfo=UTC)

# Datetimes are stored as integer microseconds since the epoch (UTC): exact, and they sort.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, func TEXT NOT NULL,
    args BLOB NOT NULL, kwargs BLOB NOT NULL, group_name TEXT, stream_id TEXT,
    kind TEXT NOT NULL, status TEXT NOT NULL, enqueued INTEGER, started INTEGER, stopped INTEGER,
    result BLOB NOT NULL, error TEXT, attempt_count INTEGER NOT NULL, output TEXT NOT NULL,
    schedule TEXT, started_by TEXT
);
CREATE INDEX IF NOT EXISTS tasks_schedule ON tasks (schedule, enqueued);
CREATE INDEX IF NOT EXISTS tasks_name ON tasks (name, enqueued);
CREATE INDEX IF NOT EXISTS tasks_stream_id ON tasks (stream_id, enqueued);
CREATE INDEX IF NOT EXISTS tasks_group ON tasks (group_name, enqueued);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status, stopped);
CREATE INDEX IF NOT EXISTS tasks_enqueued ON tasks (enqueued);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
"""
_COLUMNS = (
    "id, name, func, args, kwargs, group_name, stream_id, kind, status, enqueued, "
    "started, stopped, result, error, attempt_count, output, schedule, started_by"
)
# An upsert, not INSERT OR REPLACE, keeps the rowid: it breaks ties of `enqueued` in listings.
_UPSERT = (
    f"INSERT INTO tasks ({_COLUMNS}) VALUES ({', '.join('?' * 18)}) ON CONFLICT (id) "
    "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS.split(", ")[1:])
)
_NEWEST = "ORDER BY enqueued DESC, rowid DESC"

# Queued operations are plain tuples, cheap to build on the caller's side: (_TASK, row),
# (_EVENT, run_id, seq, data), (_TRIM, run_id, head, tail), (_DELETE, column, value, reply).
_TASK, _EVENT, _TRIM, _DELETE = "task", "event", "trim", "delete"
_Op = tuple[Any, ...]


class _Reply:
    """Where the writer puts the number of tasks a delete removed (None if its batch failed)."""

    count: int | None = None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # aflush() may have been cancelled meanwhile
        future.set_result(None)


def _to_us(value: datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:  # records hold UTC by contract; do not fail on a naive one
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1)


def _from_us(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _pickle_or_repr(value: Any, wrap: Callable[[str], Any], limit: int) -> tuple[Any, bytes]:
    """Pickle `value`; if it cannot be pickled or is too large, pickle `wrap(repr(value))`."""
    try:
        blob = pickle.dumps(value, protocol=_PROTOCOL)
        if len(blob) <= limit:
            return value, blob
    except Exception:
        pass
    try:
        text = repr(value)[:_REPR_LIMIT]
    except Exception:
        text = f"<unrepresentable {type(value).__name__}>"
    wrapped = wrap(text)
    return wrapped, pickle.dumps(wrapped, protocol=_PROTOCOL)


def _unpickle(blob: bytes, task_id: str, field: str, fallback: Callable[[str], Any]) -> Any:
    # A value whose class has gone away must not make every listing of the tasks fail.
    try:
        return pickle.loads(blob)
    except Exception as exc:
        logger.warning("store: cannot unpickle the %s of task %s: %s", field, task_id, exc)
        return fallback(f"<{field} could not be unpickled: {exc}>")


def _status(status: TaskStatus | None) -> str | None:
    return None if status is None else TaskStatus(status).value


def _record(row: Sequence[Any]) -> TaskRecord:
    task_id = row[0]
    return TaskRecord(
        id=task_id,
        name=row[1],
        func=row[2],
        args=_unpickle(row[3], task_id, "args", lambda text: (text,)),
        kwargs=_unpickle(row[4], task_id, "kwargs", lambda text: {"__repr__": text}),
        group=row[5],
        stream_id=row[6],
        kind=row[7],
        status=TaskStatus(row[8]),
        enqueued=_from_us(row[9]),
        started=_from_us(row[10]),
        stopped=_from_us(row[11]),
        result=_unpickle(row[12], task_id, "result", lambda text: None),
        error=row[13],
        attempt_count=row[14],
        output=row[15],
        schedule=row[16],
        started_by=row[17],
    )


class Store:
    """Task records and stream events in one SQLite file (or ":memory:"), written by one thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        save_limit: int = 250,
        batch_size: int = 1000,
        max_value_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self._path = os.fspath(path)
        self._memory = self._path == ":memory:"
        self._save_limit = save_limit
        self._batch_size = max(1, batch_size)
        self._max_value_bytes = max_value_bytes
        # _lock guards the queue, the counters, the overlay and the state; it is held only briefly.
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._flushed = threading.Condition(self._lock)
        self._queue: collections.deque[_Op] = collections.deque()
        self._enqueued = 0  # operations ever enqueued; an operation's number is this after it
        self._done = 0  # operations the writer has finished with (committed or dropped)
        self._overlay: dict[str, tuple[int, TaskRecord]] = {}  # id -> (op number, newest record)
        self._pending_runs: dict[str, int] = {}  # run id -> op number of its last event write
        self._waiters: list[tuple[int, Callable[[], None]]] = []  # aflush: (op number, wake)
        self._state = "new"  # -> "open" -> "closed"
        self._write_errors = 0
        self._thread: threading.Thread | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        # ":memory:" is one database per connection, so writer and readers share one, and its lock.
        self._write_lock = self._read_lock if self._memory else threading.Lock()

    # -- life cycle --------------------------------------------------------------------------

    def open(self) -> list[TaskRecord]:
        """Connect, create the schema, start the writer; return the tasks marked INTERRUPTED."""
        if self._state != "new":
            raise StoreError(f"store is {self._state} already")
        writer = reader = None
        try:
            if not self._memory:
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            writer = self._connect()
            if not self._memory:
                writer.execute("PRAGMA journal_mode=WAL")
            version = writer.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store: {self._path} has schema version {version}, "
                    f"newer than this code's {SCHEMA_VERSION}"
                )
            writer.executescript(_SCHEMA)
            writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            interrupted = self._interrupt_unfinished(writer)
            reader = writer if self._memory else self._connect()
            if reader is not writer:
                reader.execute("PRAGMA query_only = ON")
        except (OSError, sqlite3.Error, StoreError) as exc:
            for conn in (writer, reader):  # closing twice (":memory:") is harmless
                if conn is not None:
                    conn.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"store: cannot open {self._path}: {exc}") from exc
        self._writer, self._reader = writer, reader
        self._state = "open"
        self._thread = threading.Thread(target=self._run_writer, name="taskcast-store", daemon=True)
        self._thread.start()
        return interrupted

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: the writer issues BEGIN/COMMIT itself. timeout= is the busy_timeout.
        conn = sqlite3.connect(
            self._path, timeout=5.0, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, fast commits
        return conn

    def _interrupt_unfinished(self, conn: sqlite3.Connection) -> list[TaskRecord]:
        now = datetime.now(UTC)
        unfinished = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM tasks WHERE status IN (?, ?) ORDER BY enqueued, rowid",
            unfinished,
        ).fetchall()
        conn.execute(
            "UPDATE tasks SET status = ?, stopped = ?, error = ? WHERE status IN (?, ?)",
            (TaskStatus.INTERRUPTED.value, _to_us(now), INTERRUPTED_ERROR, *unfinished),
        )
        conn.execute("COMMIT")
        return [
            _record(row).replace(
                status=TaskStatus.INTERRUPTED, stopped=now, error=INTERRUPTED_ERROR
            )
            for row in rows
        ]

    def close(self) -> None:
        """Commit everything queued, stop the writer thread, close the connections. Idempotent."""
        with self._lock:
            if self._state == "closed":
                return
            self._state = "closed"
            self._has_work.notify()
        if self._thread is not None:
            self._thread.join()  # the writer drains the queue before it returns
        with self._read_lock:
            for conn in (self._writer, self._reader):  # closing twice (":memory:") is harmless
                if conn is not None:
                    conn.close()
            self._writer = self._reader = None

    def flush(self, timeout: float | None = 10.0) -> None:
        """Block until every write enqueued before the call is committed (or dropped: failed)."""
        with self._lock:
            target = self._enqueued
            if not self._flushed.wait_for(lambda: self._done >= target, timeout):
                raise StoreError(
                    f"store: {target - self._done} writes were not committed within {timeout} s"
                )

    async def aflush(self) -> None:
        """Like `flush`, but awaits: the writer thread wakes this coroutine through the loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # the loop was closed meanwhile: nobody waits any more
                pass

        with self._lock:
            if self._done >= self._enqueued:
                return
            self._waiters.append((self._enqueued, wake))
        await future

    @property
    def write_errors(self) -> int:
        """How many batches failed to commit since open()."""
        return self._write_errors

    # -- writes: enqueue only ------------------------------------------------------------------

    def _enqueue(self, op: _Op) -> int:
        """Queue one operation and return its number. The caller holds self._lock."""
        if self._state != "open":
            raise StoreError("store is closed" if self._state == "closed" else "store is not open")
        self._queue.append(op)
        self._enqueued += 1
        self._has_work.notify()
        return self._enqueued

    def save_task(self, record: TaskRecord) -> None:
        """Insert or replace a task record. Raises StoreError, enqueuing nothing, if its result
        cannot be pickled or is too large; args/kwargs that cannot are stored as their repr."""
        try:
            result = pickle.dumps(record.result, protocol=_PROTOCOL)
        except Exception as exc:
            raise StoreError(
                f"task {record.id}: its result cannot be pickled: {type(exc).__name__}: {exc}"
            ) from exc
        if len(result) > self._max_value_bytes:
            raise StoreError(
                f"task {record.id}: its pickled result is {len(result)} bytes, "
                f"more than the limit of {self._max_value_bytes}"
            )
        limit = self._max_value_bytes
        args, args_blob = _pickle_or_repr(record.args, lambda text: (text,), limit)
        kwargs, kwargs_blob = _pickle_or_repr(record.kwargs, lambda text: {"__repr__": text}, limit)
        if args is not record.args or kwargs is not record.kwargs:
            record = record.replace(args=args, kwargs=kwargs)  # what a read will return later
        row = (
            record.id,
            record.name,
            record.func,
            args_blob,
            kwargs_blob,
            record.group,
            record.stream_id,
            record.kind,
            record.status.value,
            _to_us(record.enqueued),
            _to_us(record.started),
            _to_us(record.stopped),
            result,
            record.error,
            record.attempt_count,
            record.output,
            record.schedule,
            record.started_by,
        )
        with self._lock:
            self._overlay[record.id] = (self._enqueue((_TASK, row)), record)

    def append_event(self, run_id: str, seq: int, data_json: str) -> None:
        """Queue one event of a run's stream (run_id is the task id; data_json is JSON text)."""
        with self._lock:
            self._pending_runs[run_id] = self._enqueue((_EVENT, run_id, seq, data_json))

    def trim_events(self, run_id: str, keep_head: int, keep_tail: int) -> None:
        """Delete that run's events with keep_head < seq <= max_seq - keep_tail."""
        with self._lock:
            self._pending_runs[run_id] = self._enqueue((_TRIM, run_id, keep_head, keep_tail))

    def delete_group(self, group: str) -> int:
        """Delete the tasks of a group and their events; wait for it; return how many tasks."""
        return self._delete("group_name", group)

    def delete_task(self, task_id: str) -> bool:
        """Delete one task and its events; wait for it; return whether it existed."""
        return self._delete("id", task_id) > 0

    def _delete(self, column: str, value: str) -> int:
        reply = _Reply()
        with self._lock:
            self._enqueue((_DELETE, column, value, reply))
        self.flush()
        if reply.count is None:
            raise StoreError(f"store: could not delete the tasks with {column} {value!r}")
        return reply.count

    # -- the writer thread ---------------------------------------------------------------------

    def _run_writer(self) -> None:
        while True:
            with self._lock:
                while not self._queue and self._state == "open":
                    self._has_work.wait()
                if not self._queue:
                    return  # closed and drained
                batch = [
                    self._queue.popleft() for _ in range(min(len(self._queue), self._batch_size))
                ]
            self._commit(batch)
            self._finish(batch)

    def _commit(self, batch: list[_Op]) -> bool:
        assert self._writer is not None
        with self._write_lock:
            try:
                self._apply(self._writer, batch)
                return True
            except Exception as exc:  # the writer must survive anything: log, drop, go on
                try:
                    self._writer.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite already rolled back, or BEGIN itself failed
                self._write_errors += 1
                kinds = collections.Counter(op[0] for op in batch)
                logger.error(
                    "store: could not commit %d writes (%s): %s",
                    len(batch),
                    ", ".join(f"{n} {kind}" for kind, n in kinds.items()),
                    exc,
                    exc_info=not isinstance(exc, sqlite3.Error),
                )
                return False

    def _apply(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        events: list[_Op] = []
        replies: list[tuple[_Reply, int]] = []
        prune = False
        for op in batch:
            if op[0] == _EVENT:
                events.append(op[1:])  # inserted together, in one executemany
                continue
            if events:  # keep the order: the events before a trim or a delete go in first
                conn.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?)", events)
                events = []
            if op[0] == _TASK:
                conn.execute(_UPSERT, op[1])
                prune = prune or op[1][8] == TaskStatus.SUCCESS.value
            elif op[0] == _TRIM:
                conn.execute(
                    "DELETE FROM events WHERE run_id = ?1 AND seq > ?2 AND seq <= "
                    "(SELECT MAX(seq) FROM events WHERE run_id = ?1) - ?3",
                    op[1:],
                )
            else:
                ids = conn.execute(f"SELECT id FROM tasks WHERE {op[1]} = ?", (op[2],))
                replies.append((op[3], self._delete_ids(conn, ids.fetchall())))
        if events:
            conn.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?)", events)
        if prune and self._save_limit != 0:
            # Django Q's save_limit: keep the newest N successes; below zero, keep none.
            old = conn.execute(
                "SELECT id FROM tasks WHERE status = ? ORDER BY stopped DESC, "
                "rowid DESC LIMIT -1 OFFSET ?",
                (TaskStatus.SUCCESS.value, max(self._save_limit, 0)),
            )
            self._delete_ids(conn, old.fetchall())
        conn.execute("COMMIT")
        for reply, count in replies:  # only now: a failed batch leaves them None
            reply.count = count

    @staticmethod
    def _delete_ids(conn: sqlite3.Connection, ids: list[tuple[str]]) -> int:
        conn.executemany("DELETE FROM events WHERE run_id = ?", ids)
        conn.executemany("DELETE FROM tasks WHERE id = ?", ids)
        return len(ids)

    def _finish(self, batch: list[_Op]) -> None:
        """Forget what the batch wrote from the overlay (committed, or dropped) and wake waiters."""
        task_ids = {op[1][0] for op in batch if op[0] == _TASK}
        run_ids = {op[1] for op in batch if op[0] in (_EVENT, _TRIM)}
        with self._lock:
            self._done += len(batch)
            for task_id in task_ids:
                if self._overlay.get(task_id, (0,))[0] <= self._done:  # else a newer one is queued
                    self._overlay.pop(task_id, None)
            for run_id in run_ids:
                if self._pending_runs.get(run_id, 0) <= self._done:
                    self._pending_runs.pop(run_id, None)
            ready = [wake for number, wake in self._waiters if number <= self._done]
            self._waiters = [(n, wake) for n, wake in self._waiters if n > self._done]
            self._flushed.notify_all()
        for wake in ready:
            wake()

    # -- reads ---------------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            if self._reader is None:
                raise StoreError(f"store is {'closed' if self._state == 'closed' else 'not open'}")
            return self._reader.execute(sql, params).fetchall()

    def get_task(self, id_or_name: str) -> TaskRecord | None:
        """The task with that id, else the newest task with that name; never waits for writes."""
        with self._lock:
            pending = self._overlay.get(id_or_name)
        if pending is not None:
            return pending[1]
        # Overlay entries leave only after their commit, so a miss there means the file has it.
        rows = self._query(f"SELECT {_COLUMNS} FROM tasks WHERE id = ?", (id_or_name,))
        if rows:
            return _record(rows[0])
        return self._newest("name", id_or_name)

    def latest_run(self, stream_id: str) -> TaskRecord | None:
        """The newest task with that stream id; never waits for writes."""
        return self._newest("stream_id", stream_id)

    def _newest(self, field: str, value: str) -> TaskRecord | None:
        with self._lock:
            pending = {r.id: r for _, r in self._overlay.values() if getattr(r, field) == value}
        rows = self._query(
            f"SELECT {_COLUMNS} FROM tasks WHERE {field} = ? {_NEWEST} LIMIT 1", (value,)
        )
        candidates = list(pending.values())  # first, so that they win ties
        candidates += [r for r in map(_record, rows) if r.id not in pending]
        return max(candidates, key=lambda r: r.enqueued or _NEVER, default=None)

    def _where(self, **filters: str | None) -> tuple[str, list[str]]:
        """A WHERE clause for the filters that are not None, after committing pending records:
        listings and counts flush instead of merging the overlay into SQL results."""
        with self._lock:
            pending = bool(self._overlay)
        if pending:
            self.flush()
        used = {column: value for column, value in filters.items() if value is not None}
        clauses = " AND ".join(f"{column} = ?" for column in used)
        return (f" WHERE {clauses}" if clauses else ""), list(used.values())

    def list_tasks(
        self,
        *,
        group: str | None = None,
        status: TaskStatus | None = None,
        func: str | None = None,
        stream_id: str | None = None,
        schedule: str | None = None,
        started_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """Matching tasks, newest enqueued first."""
        where, params = self._where(
            group_name=group,
            status=_status(status),
            func=func,
            stream_id=stream_id,
            schedule=schedule,
            started_by=started_by,
        )
        rows = self._query(
            f"SELECT {_COLUMNS} FROM tasks{where} {_NEWEST} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_record(row) for row in rows]

    def count_tasks(
        self,
        *,
        group: str | None = None,
        status: TaskStatus | None = None,
        func: str | None = None,
        started_by: str | None = None,
    ) -> int:
        """How many tasks match."""
        where, params = self._where(
            group_name=group, status=_status(status), func=func, started_by=started_by
        )
        count: int = self._query(f"SELECT COUNT(*) FROM tasks{where}", params)[0][0]
        return count

    def events(
        self, run_id: str, after: int = 0, limit: int | None = None
    ) -> list[tuple[int, str]]:
        """(seq, data_json) of a run's events with seq > after, ascending. Flushes first, blocking,
        only if event writes of this run are still queued."""
        with self._lock:
            pending = run_id in self._pending_runs
        if pending:
            self.flush()
        rows = self._query(
            "SELECT seq, data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after, -1 if limit is None else limit),
        )
        return [(seq, data) for seq, data in rows]

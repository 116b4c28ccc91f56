"""SQLite persistence of task records and of the events of each task's stream.

The store owns the database file, so that `fetch()`, `result()` and the replay of a stream still
work after the server restarts. It is called from the asyncio event loop thread, so writes never
block: `save_task`, `append_event` and `trim_events` only put an operation on a queue, and one
writer thread commits that queue in batches, one transaction per batch.

Reads are quick indexed queries on their own connection. They see writes that are still queued:
`get_task` and `latest_run` through an overlay of the pending task records, `list_tasks` and
`count_tasks` by flushing first when task records are pending, and `events` by flushing first
when that run has pending event writes (replay after a restart, its main use, never waits).

When writing fails, nothing is thrown away at once and the server does not stop:

- A failure of the database as a whole (disk full, file locked by another program, I/O error,
  read-only file) is an outage. The writes of the failed batch are kept in memory, in order, and
  retried with a growing delay (`retry_delay` doubling up to `max_retry_delay`); while the outage
  lasts, new writes join them at once instead of waiting for the disk. Reads still see the kept
  task records and events. One ERROR is logged when the outage starts, one WARNING when writing
  works again. The memory they take is bounded (`max_kept_bytes`): past it, the oldest kept
  events are given up first, then the oldest task records.
- A failure of one write (a value SQLite refuses, a trigger) is found by splitting the batch
  until that write stands alone; the others are committed and only it is given up.

A task record that is given up is kept in memory (the newest `UNSAVED_KEPT` of them) with the
error "could not be saved: <reason>", so `get_task` tells why it will not be there after a
restart. What is still kept when the store closes gets one last try and is given up if that
fails too. `write_errors` counts the batches that failed in whole or in part, retries included.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskcast.errors import StoreError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.store import chunks as store_events
from taskcast.store.chunks import EventChunk
from taskcast.store.rows import (
    COLUMNS,
    NEVER,
    NEWEST,
    PROTOCOL,
    SCHEMA,
    UPSERT,
    pickle_or_repr,
    record_from_row,
    status_value,
    to_us,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: events stored in chunks (app/store_events.py)
INTERRUPTED_ERROR = "interrupted: the server stopped before the task finished"
UNSAVED_PREFIX = "could not be saved: "
#: task records given up on that stay readable in memory, newest first
UNSAVED_KEPT = 1000
#: how long the writer waits for more writes to commit together, when only a few are queued
LINGER_SECONDS = 0.02
# Queued operations are plain tuples, cheap to build on the caller's side: (_TASK, row),
# (_EVENT, run_id, chunk), (_TRIM, run_id, head, tail), (_DELETE, column, value, reply).
_TASK, _EVENT, _TRIM, _DELETE = "task", "event", "trim", "delete"
_Op = tuple[Any, ...]
_Item = tuple[int, _Op]  # an operation and its number (numbers grow with every enqueue)

# Primary SQLite result codes that concern the database as a whole, not one write: the same write
# will succeed once the condition passes (busy/locked, out of memory, read-only, I/O error,
# corrupt, disk full, cannot open, lock protocol, not a database).
_OUTAGE_CODES = frozenset({5, 6, 7, 8, 10, 11, 13, 14, 15, 26})


def _is_outage(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError | OSError):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _OUTAGE_CODES


def _size(op: _Op) -> int:
    """Roughly the bytes an operation holds, to bound what an outage keeps in memory."""
    if op[0] == _EVENT:
        chunk: EventChunk = op[2]
        return 100 * len(chunk) + chunk.size
    if op[0] == _TASK:
        return 200 + sum(len(value) for value in op[1] if isinstance(value, str | bytes))
    return 100


def _writes(items: Iterable[_Item]) -> int:
    """How many writes the operations make: each event of a chunk counts as one."""
    return sum(len(op[2]) if op[0] == _EVENT else 1 for _, op in items)


def _unsaved(record: TaskRecord, reason: str) -> TaskRecord:
    text = UNSAVED_PREFIX + reason
    return record.replace(error=f"{text}\n\n{record.error}" if record.error else text)


_KINDS = {_TASK: "task record(s)", _EVENT: "event(s)", _TRIM: "trim(s)", _DELETE: "delete(s)"}


def _log_given_up(given_up: list[tuple[_Item, str]]) -> None:
    by_reason: dict[str, list[_Op]] = collections.defaultdict(list)
    for (_, op), reason in given_up:
        by_reason[reason].append(op)
    for reason, ops in by_reason.items():
        counts: collections.Counter[str] = collections.Counter()
        for op in ops:
            counts[op[0]] += len(op[2]) if op[0] == _EVENT else 1
        tasks = sorted({op[1][0] for op in ops if op[0] == _TASK})
        named = " (" + ", ".join(tasks[:10]) + (", ..." if len(tasks) > 10 else "") + ")"
        parts = [
            f"{counts[kind]} {label}{named if kind == _TASK else ''}"
            for kind, label in _KINDS.items()
            if counts[kind]
        ]
        logger.error("store: gave up saving %s: %s", ", ".join(parts), reason)


class _Outcome:
    """What became of the operations of one batch."""

    __slots__ = ("committed", "given_up", "kept", "outage")

    def __init__(self) -> None:
        self.committed: list[_Item] = []
        self.given_up: list[tuple[_Item, str]] = []
        self.kept: list[_Item] = []
        self.outage: str | None = None


class _Reply:
    """Where the writer puts the number of tasks a delete removed (None if its batch failed)."""

    count: int | None = None


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # aflush() may have been cancelled meanwhile
        future.set_result(None)


class Store:
    """Task records and stream events in one SQLite file (or ":memory:"), written by one thread."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        save_limit: int = 250,
        batch_size: int = 1000,
        max_value_bytes: int = 16 * 1024 * 1024,
        busy_timeout: float = 5.0,
        retry_delay: float = 0.25,
        max_retry_delay: float = 30.0,
        max_kept_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._path = os.fspath(path)
        self._memory = self._path == ":memory:"
        self._save_limit = save_limit
        self._batch_size = max(1, batch_size)
        self._max_value_bytes = max_value_bytes
        self._busy_timeout = busy_timeout
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._max_kept_bytes = max_kept_bytes
        # _lock guards the queue, the counters, the overlay and the state; it is held only briefly.
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._flushed = threading.Condition(self._lock)
        self._queue: collections.deque[_Item] = collections.deque()
        self._enqueued = 0  # operations ever enqueued; an operation's number is this after it
        # Operations leave the queue in order, so those numbered up to _done have left it:
        # committed, kept for a retry, or given up.
        self._done = 0
        self._queued_deletes = 0  # a delete in the queue is tried at once, even in an outage
        self._lingering = False  # the writer waits a moment for more writes to batch
        self._flushing = 0  # threads waiting in flush(): the writer does not linger for them
        self._overlay: dict[str, tuple[int, TaskRecord]] = {}  # id -> (op number, newest record)
        self._pending_runs: dict[str, int] = {}  # run id -> op number of its last event write
        # The event chunk of each run that is still in _queue, and so can take more events.
        self._open_chunks: dict[str, EventChunk] = {}
        # Writes that failed with an outage, in order, retried at _retry_at; what they weigh.
        self._kept: collections.deque[_Item] = collections.deque()
        self._kept_bytes = 0
        self._kept_events: collections.Counter[str] = collections.Counter()  # run id -> count
        self._retry_at = 0.0
        self._next_delay = retry_delay
        self._outage_since: float | None = None
        self._given_up: collections.OrderedDict[str, tuple[int, TaskRecord]] = (
            collections.OrderedDict()
        )  # id -> (op number, record marked "could not be saved")
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
            writer.execute("BEGIN IMMEDIATE")
            for statement in (SCHEMA + store_events.TABLE).split(";"):  # executescript() commits
                writer.execute(statement)
            if version == 1:
                store_events.migrate_from_rows(writer)
            writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            writer.execute("COMMIT")
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
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, fast commits
        return conn

    def _interrupt_unfinished(self, conn: sqlite3.Connection) -> list[TaskRecord]:
        now = datetime.now(UTC)
        unfinished = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM tasks WHERE status IN (?, ?) ORDER BY enqueued, rowid",
            unfinished,
        ).fetchall()
        conn.execute(
            "UPDATE tasks SET status = ?, stopped = ?, error = ? WHERE status IN (?, ?)",
            (TaskStatus.INTERRUPTED.value, to_us(now), INTERRUPTED_ERROR, *unfinished),
        )
        conn.execute("COMMIT")
        return [
            record_from_row(row).replace(
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
        """Block until every write enqueued before the call has been tried: committed, or kept
        in memory for a retry (an outage), or given up."""
        with self._lock:
            target = self._enqueued
            self._flushing += 1
            self._has_work.notify()  # no lingering while someone waits
            try:
                if not self._flushed.wait_for(lambda: self._done >= target, timeout):
                    raise StoreError(
                        f"store: {target - self._done} writes were not committed within {timeout} s"
                    )
            finally:
                self._flushing -= 1

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
            self._has_work.notify()  # no lingering while someone waits
        await future

    @property
    def write_errors(self) -> int:
        """How many batches failed to commit, in whole or in part, since open() (retries count)."""
        return self._write_errors

    @property
    def kept_writes(self) -> int:
        """Writes that failed in an outage and wait in memory for a retry."""
        with self._lock:
            return _writes(self._kept)

    # -- writes: enqueue only ------------------------------------------------------------------

    def _enqueue(self, op: _Op) -> int:
        """Queue one operation and return its number. The caller holds self._lock."""
        if self._state != "open":
            raise StoreError("store is closed" if self._state == "closed" else "store is not open")
        self._enqueued += 1
        self._queue.append((self._enqueued, op))
        if op[0] == _DELETE:
            self._queued_deletes += 1
        if op[0] in (_TRIM, _DELETE):
            self._open_chunks.clear()  # events sent after it must not be written before it
        if not self._lingering or op[0] == _DELETE:
            self._has_work.notify()
        return self._enqueued

    def save_task(self, record: TaskRecord) -> None:
        """Insert or replace a task record. Raises StoreError, enqueuing nothing, if its result
        cannot be pickled or is too large; args/kwargs that cannot are stored as their repr."""
        try:
            result = pickle.dumps(record.result, protocol=PROTOCOL)
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
        args, args_blob = pickle_or_repr(record.args, lambda text: (text,), limit)
        kwargs, kwargs_blob = pickle_or_repr(record.kwargs, lambda text: {"__repr__": text}, limit)
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
            to_us(record.enqueued),
            to_us(record.started),
            to_us(record.stopped),
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
        """Queue one event of a run's stream (run_id is the task id; data_json is JSON text).
        Each seq of a run is appended once; the next seq joins the run's chunk still queued."""
        with self._lock:
            self._append(run_id, seq, data_json)

    def append_events(self, run_id: str, first_seq: int, events: list[str]) -> None:
        """Queue consecutive events of a run's stream, from `first_seq`."""
        with self._lock:
            for seq, data_json in enumerate(events, first_seq):
                self._append(run_id, seq, data_json)

    def _append(self, run_id: str, seq: int, data_json: str) -> None:
        """Queue one event (the caller holds self._lock)."""
        chunk = self._open_chunks.get(run_id)
        if chunk is not None and self._state == "open" and chunk.takes(seq, data_json):
            return  # _pending_runs holds the number of the chunk's operation already
        chunk = EventChunk(seq, data_json)
        self._pending_runs[run_id] = self._enqueue((_EVENT, run_id, chunk))
        self._open_chunks[run_id] = chunk

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
                batch = self._next_batch()
                counted = self._done  # the batch's operations numbered above this are new
            if not batch:
                return  # closed and drained
            self._finish(batch, counted, self._write(batch))

    def _next_batch(self) -> list[_Item]:
        """Wait for work (the caller holds self._lock); kept writes first, then the queue."""
        while True:
            now = time.monotonic()
            is_open = self._state == "open"
            if self._kept and is_open and now < self._retry_at and not self._queued_deletes:
                if self._queue:  # an outage: new writes wait with the kept ones, not for the disk
                    self._keep(list(self._queue))
                    self._queue.clear()
                    self._open_chunks.clear()
                    self._mark_done(self._enqueued)
                self._has_work.wait(self._retry_at - now)
                continue
            if self._kept or self._queue:
                break
            if not is_open:
                return []
            self._has_work.wait()
        if is_open and not self._kept and not self._queued_deletes:
            # A task sending events one by one would otherwise cost a commit each: let more
            # arrive for a moment (a flush, a delete or a full batch cuts this short).
            self._lingering = True
            self._has_work.wait_for(self._stop_lingering, LINGER_SECONDS)
            self._lingering = False
        # Kept writes stay in _kept (readers see them) until _finish knows what became of them.
        batch = list(itertools.islice(self._kept, self._batch_size))
        while self._queue and len(batch) < self._batch_size:
            item = self._queue.popleft()
            self._queued_deletes -= item[1][0] == _DELETE
            batch.append(item)
        self._open_chunks.clear()  # chunks that left the queue take no more events
        return batch

    def _stop_lingering(self) -> bool:
        """A full batch, a flush or aflush waiting, a delete, or the store closing."""
        return bool(
            len(self._queue) >= self._batch_size
            or self._state != "open"
            or self._flushing
            or self._waiters
            or self._queued_deletes
        )

    def _write(self, batch: list[_Item]) -> _Outcome:
        """Commit a batch; on a failure, find what failed by committing smaller parts."""
        outcome = _Outcome()
        parts = [batch]
        while parts:
            part = parts.pop(0)
            error = self._commit([op for _, op in part])
            if error is None:
                outcome.committed += part
            elif _is_outage(error):
                outcome.outage = f"{error}"
                outcome.kept = [item for rest in (part, *parts) for item in rest]
                break
            elif len(part) == 1:
                outcome.given_up.append((part[0], f"{error}"))
            else:
                middle = len(part) // 2
                parts[:0] = [part[:middle], part[middle:]]
        if outcome.outage or outcome.given_up:
            self._write_errors += 1
        return outcome

    def _commit(self, batch: list[_Op]) -> BaseException | None:
        assert self._writer is not None
        with self._write_lock:
            try:
                self._apply(self._writer, batch)
                return None
            except Exception as exc:  # the writer must survive anything
                try:
                    self._writer.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite already rolled back, or BEGIN itself failed
                if not isinstance(exc, sqlite3.Error | MemoryError | OSError):
                    logger.debug("store: a batch failed", exc_info=True)
                return exc

    def _apply(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        events: list[tuple[str, int, int, str]] = []
        replies: list[tuple[_Reply, int]] = []
        prune = False
        for op in batch:
            if op[0] == _EVENT:
                events += store_events.rows(op[1], op[2])  # inserted together, in one executemany
                continue
            if events:  # keep the order: the events before a trim or a delete go in first
                conn.executemany(store_events.INSERT, events)
                events = []
            if op[0] == _TASK:
                conn.execute(UPSERT, op[1])
                prune = prune or op[1][8] == TaskStatus.SUCCESS.value
            elif op[0] == _TRIM:
                store_events.trim(conn, *op[1:])
            else:
                ids = conn.execute(f"SELECT id FROM tasks WHERE {op[1]} = ?", (op[2],))
                replies.append((op[3], self._delete_ids(conn, ids.fetchall())))
        if events:
            conn.executemany(store_events.INSERT, events)
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
        conn.executemany(store_events.DELETE_RUN, ids)
        conn.executemany("DELETE FROM tasks WHERE id = ?", ids)
        return len(ids)

    def _finish(self, batch: list[_Item], counted: int, outcome: _Outcome) -> None:
        """Account for what became of a batch, keep or give up what failed, wake waiters."""
        with self._lock:
            retried = sum(1 for number, _ in batch if number <= counted)
            for _ in range(retried):  # they were the first kept ones; taken off only now
                self._unaccount(self._kept.popleft())
            for number, op in outcome.committed:
                if op[0] == _TASK:
                    task_id = op[1][0]
                    if self._overlay.get(task_id, (0,))[0] <= number:
                        self._overlay.pop(task_id, None)
                    if self._given_up.get(task_id, (number,))[0] < number:
                        del self._given_up[task_id]
            given_up = list(outcome.given_up)
            if outcome.outage is not None:
                reason = outcome.outage
                if self._state != "open":
                    rest = [*outcome.kept, *self._kept, *self._queue]
                    self._kept.clear()
                    self._kept_bytes = 0
                    self._kept_events.clear()
                    self._queue.clear()
                    self._open_chunks.clear()
                    self._queued_deletes = 0
                    closing = f"{reason} (the server stopped before it could retry)"
                    given_up += [(item, closing) for item in rest]
                else:
                    deletes = [item for item in outcome.kept if item[1][0] == _DELETE]
                    given_up += [(item, reason) for item in deletes]
                    kept = [item for item in outcome.kept if item[1][0] != _DELETE]
                    for item in reversed(kept):
                        self._kept.appendleft(item)
                        self._account(item)
                    self._outage_began(reason)
                    given_up += self._over_bound()
            elif outcome.committed:
                self._next_delay = self._retry_delay
                if self._outage_since is not None and not self._kept:
                    logger.warning(
                        "store: writing to %s works again after %.1f s; the kept writes are saved",
                        self._path,
                        time.monotonic() - self._outage_since,
                    )
                    self._outage_since = None
            for item, reason in given_up:
                self._give_up(item, reason)
            if given_up:  # before anyone waiting in flush() is woken
                _log_given_up(given_up)
            self._mark_done(self._queue[0][0] - 1 if self._queue else self._enqueued)

    def _outage_began(self, reason: str) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            logger.error(
                "store: cannot write to %s: %s; %d writes are kept in memory and retried",
                self._path,
                reason,
                _writes(self._kept),
            )
        else:
            logger.debug("store: retry failed (%s); %d writes kept", reason, _writes(self._kept))
        self._retry_at = now + self._next_delay
        self._next_delay = min(self._next_delay * 2, self._max_retry_delay)

    def _account(self, item: _Item) -> None:
        op = item[1]
        self._kept_bytes += _size(op)
        if op[0] == _EVENT:
            self._kept_events[op[1]] += 1

    def _unaccount(self, item: _Item) -> None:
        op = item[1]
        self._kept_bytes -= _size(op)
        if op[0] == _EVENT:
            self._kept_events[op[1]] -= 1
            if self._kept_events[op[1]] <= 0:
                del self._kept_events[op[1]]

    def _keep(self, items: list[_Item]) -> None:
        """New writes join the kept ones during an outage (the caller holds self._lock)."""
        for item in items:  # never a delete: one in the queue ends the wait for the retry
            self._kept.append(item)
            self._account(item)
        given_up = self._over_bound()
        for item, reason in given_up:
            self._give_up(item, reason)
        if given_up:
            _log_given_up(given_up)

    def _over_bound(self) -> list[tuple[_Item, str]]:
        """Past max_kept_bytes, give up kept writes down to 3/4 of it: events and task records
        that a newer record of the same task replaces first, then the oldest task records."""
        if self._kept_bytes <= self._max_kept_bytes:
            return []
        target = self._max_kept_bytes * 3 // 4
        reason = f"more than {self._max_kept_bytes} bytes of writes waited for the disk"
        dropped: list[tuple[_Item, str]] = []
        for cheap_first in (True, False):
            remaining: collections.deque[_Item] = collections.deque()
            for item in self._kept:
                number, op = item
                droppable = op[0] == _EVENT or (
                    op[0] == _TASK
                    and (not cheap_first or self._overlay.get(op[1][0], (0,))[0] > number)
                )
                if droppable and self._kept_bytes > target:
                    self._unaccount(item)
                    dropped.append((item, reason))
                else:
                    remaining.append(item)
            self._kept = remaining
            if self._kept_bytes <= target:
                break
        return dropped

    def _give_up(self, item: _Item, reason: str) -> None:
        """A write that will not be made; a task record says so (the caller holds self._lock)."""
        number, op = item
        if op[0] != _TASK:
            return  # a delete's reply stays None; a lost event shows as a gap after a restart
        task_id = op[1][0]
        newest = self._overlay.get(task_id)
        if newest is None or newest[0] != number:
            return  # a newer record of this task is on its way and decides
        del self._overlay[task_id]
        self._given_up[task_id] = (number, _unsaved(newest[1], reason))
        self._given_up.move_to_end(task_id)
        while len(self._given_up) > UNSAVED_KEPT:
            self._given_up.popitem(last=False)

    def _mark_done(self, done: int) -> None:
        """Operations numbered up to `done` have left the queue: wake who waits for them."""
        self._done = done
        for run_id in [run for run, number in self._pending_runs.items() if number <= done]:
            del self._pending_runs[run_id]
        ready = [wake for number, wake in self._waiters if number <= done]
        self._waiters = [(n, wake) for n, wake in self._waiters if n > done]
        self._flushed.notify_all()
        for wake in ready:
            wake()

    # -- reads ---------------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._read_lock:
            if self._reader is None:
                raise StoreError(f"store is {'closed' if self._state == 'closed' else 'not open'}")
            try:
                return self._reader.execute(sql, params).fetchall()
            except UnicodeEncodeError:
                return []  # text SQLite cannot hold (a lone surrogate) matches nothing stored

    def get_task(self, id_or_name: str) -> TaskRecord | None:
        """The task with that id, else the newest task with that name; never waits for writes."""
        with self._lock:
            pending = self._overlay.get(id_or_name) or self._given_up.get(id_or_name)
        if pending is not None:
            return pending[1]
        # Overlay entries leave only after their commit, so a miss there means the file has it.
        rows = self._query(f"SELECT {COLUMNS} FROM tasks WHERE id = ?", (id_or_name,))
        if rows:
            return record_from_row(rows[0])
        return self._newest("name", id_or_name)

    def latest_run(self, stream_id: str) -> TaskRecord | None:
        """The newest task with that stream id; never waits for writes."""
        return self._newest("stream_id", stream_id)

    def _newest(self, field: str, value: str) -> TaskRecord | None:
        with self._lock:
            pending = {
                r.id: r
                for _, r in itertools.chain(self._given_up.values(), self._overlay.values())
                if getattr(r, field) == value
            }
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
        with self._lock:
            pending = bool(self._overlay) and self._outage_since is None
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
        group: str | None = None,
        status: TaskStatus | None = None,
        func: str | None = None,
        started_by: str | None = None,
    ) -> int:
        """How many tasks match."""
        where, params = self._where(
            group_name=group, status=status_value(status), func=func, started_by=started_by
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
        with self._lock:
            kept = {
                seq: data
                for _, op in (self._kept if self._kept_events[run_id] else ())
                if op[0] == _EVENT and op[1] == run_id
                for seq, data in op[2].events(after)
            }
        # Every row holds at least one event: `limit` rows hold at least `limit` events.
        rows = self._query(
            store_events.SELECT_AFTER, (run_id, after, -1 if limit is None or kept else limit)
        )
        events = store_events.read(rows, after)
        if kept:
            events = sorted((dict(events) | kept).items())  # kept writes are newer than the file's
        return events if limit is None else events[:limit]

"""SQLite persistence of task records and of the events of each task's stream: the store's
public face.

The store owns the database file, so that `fetch()`, `result()` and the replay of a stream still
work after the server restarts. It is called from the asyncio event loop thread, so writes never
block: `save_task`, `append_event(s)` and `trim_events` only queue an operation (`ops.py`), and
the writer thread (`writer.py`) commits the queue in batches, one transaction per batch.

Reads (`reads.py`) are quick indexed queries on their own connection, and they see the writes
that are still queued.

When writing fails, nothing is thrown away at once and the server does not stop:

- A failure of the database as a whole (disk full, file locked by another program, I/O error,
  read-only file) is an outage (`outage.py`). The writes of the failed batch are kept in memory,
  in order, and retried with a growing delay (`retry_delay` doubling up to `max_retry_delay`);
  while the outage lasts, new writes join them at once instead of waiting for the disk. Reads
  still see the kept task records and events. One ERROR is logged when the outage starts, one
  WARNING when writing works again. The memory they take is bounded (`max_kept_bytes`): past it,
  the oldest kept events are given up first, then the oldest task records.
- A failure of one write (a value SQLite refuses, a trigger) is found by splitting the batch
  until that write stands alone; the others are committed and only it is given up.

A task record that is given up is kept in memory (the newest `UNSAVED_KEPT` of them) with the
error "could not be saved: <reason>", so `get_task` tells why it will not be there after a
restart. What is still kept when the store closes gets one last try and is given up if that
fails too. `write_errors` counts the batches that failed in whole or in part, retries included.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from datetime import datetime

from taskcast.errors import StoreError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.store import browse
from taskcast.store.ops import (
    ClearGroup,
    Delete,
    KeepEvents,
    Op,
    Purge,
    SaveTask,
    TrimEvents,
    apply_batch,
)
from taskcast.store.outage import Outage, writes
from taskcast.store.pending import Pending
from taskcast.store.reads import Reads, within
from taskcast.store.rows import PickledArgs, pickle_args, task_row
from taskcast.store.schema import INTERRUPTED_ERROR, open_database
from taskcast.store.watch import FileWatch
from taskcast.store.writer import Writer

logger = logging.getLogger(__name__)

__all__ = ["INTERRUPTED_ERROR", "Store", "within"]


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
        run_bound: tuple[int, int, int] | None = None,
    ) -> None:
        self._path = os.fspath(path)
        # (keep_head, max_events, max_bytes): the history bound, applied to interrupted runs
        self._run_bound = run_bound
        self._save_limit = save_limit
        self._max_value_bytes = max_value_bytes
        self._busy_timeout = busy_timeout
        self._pending = Pending()
        self._outage = Outage(self._path, retry_delay, max_retry_delay, max_kept_bytes)
        self._watch = FileWatch(self._path)
        self._writer = Writer(
            self._path,
            self._apply,
            batch_size=batch_size,
            outage=self._outage,
            pending=self._pending,
            watch=self._watch,
        )
        self._lock = self._writer.lock  # guards the queue, the overlay and the outage
        self._conn: sqlite3.Connection | None = None  # the writer's
        self._read_lock = threading.Lock()
        self._reads = Reads(self._writer, self._pending, self._outage, self._read_lock, self.flush)
        # ":memory:" is one database per connection, so writer and readers share one, and its lock.
        self._write_lock = self._read_lock if self._path == ":memory:" else threading.Lock()

    # -- life cycle ----------------------------------------------------------------------------

    def open(self) -> list[TaskRecord]:
        """Connect, create the schema, start the writer; return the tasks marked INTERRUPTED."""
        if self._writer.state != "new":
            raise StoreError(f"store is {self._writer.state} already")
        self._conn, self._reads.connection, interrupted = open_database(
            self._path, self._busy_timeout, self._run_bound
        )
        self._watch.opened()
        self._writer.start(self._conn, self._write_lock)
        return interrupted

    def close(self) -> None:
        """Commit everything queued, stop the writer thread, close the connections. Idempotent."""
        if not self._writer.stop():
            return
        if self.check_file() is not None:
            logger.error("store: closing; what was written since is lost: %s", self._watch.problem)
        with self._read_lock:
            # closing twice (":memory:", one connection for both) is harmless
            for conn in (self._conn, self._reads.connection):
                if conn is not None:
                    conn.close()
            self._conn = self._reads.connection = None

    def flush(self, timeout: float | None = 10.0) -> None:
        """Block until every write enqueued before the call has been tried: committed, or kept
        in memory for a retry (an outage), or given up."""
        self._writer.flush(timeout)

    async def aflush(self) -> None:
        """Like `flush`, but awaits: the writer thread wakes this coroutine through the loop."""
        await self._writer.aflush()

    @property
    def file_problem(self) -> str | None:
        """Why the database file is not the one opened any more (deleted or replaced), else None."""
        return self._watch.problem

    def check_file(self) -> str | None:
        """Look at the database file now (the writer also does after each batch and every
        few seconds); what `file_problem` says."""
        self._watch.check(force=True)
        return self._watch.problem

    @property
    def write_errors(self) -> int:
        """How many batches failed to commit, in whole or in part, since open() (retries count)."""
        return self._writer.write_errors

    @property
    def kept_writes(self) -> int:
        """Writes that failed in an outage and wait in memory for a retry."""
        with self._lock:
            return writes(self._outage)

    # -- writes: enqueue only ------------------------------------------------------------------

    def save_task(self, record: TaskRecord, pickled: PickledArgs | None = None) -> PickledArgs:
        """Insert or replace a task record. Raises StoreError, enqueuing nothing, if its result
        cannot be pickled or is too large; args/kwargs that cannot are stored as their repr.

        `pickled` is the record's args and kwargs already pickled; without it they are pickled
        here. Returns the pickles used, for the caller to hand to the next save of the same run.
        """
        if pickled is None:
            pickled = pickle_args(record.args, record.kwargs)
        self._writer.submit(SaveTask(*task_row(record, self._max_value_bytes, pickled)))
        return pickled

    def append_event(self, run_id: str, seq: int, data_json: str) -> None:
        """Queue one event of a run's stream (run_id is the task id; data_json is JSON text).
        Each seq of a run is appended once; the next seq joins the run's chunk still queued."""
        self._writer.append(run_id, seq, [data_json])

    def append_events(self, run_id: str, first_seq: int, events: list[str]) -> None:
        """Queue consecutive events of a run's stream, from `first_seq`."""
        self._writer.append(run_id, first_seq, events)

    def trim_events(self, run_id: str, keep_head: int, keep_tail: int) -> None:
        """Delete that run's events with keep_head < seq <= max_seq - keep_tail."""
        self._writer.submit(TrimEvents(run_id, keep_head, keep_tail))

    def keep_events(self, run_id: str, head: list[tuple[int, str]], tail_from: int) -> None:
        """Keep only the run's `head` events (seq, data_json) and those from seq `tail_from` on."""
        self._writer.submit(KeepEvents(run_id, head, tail_from))

    def delete_group(self, group: str) -> int:
        """Delete the tasks of a group and their events; wait for it; return how many tasks."""
        return self._delete("group_name", group)

    def clear_group(self, group: str) -> int:
        """Take the label off a group's tasks, keeping them; wait for it; return how many."""
        return self._counted(ClearGroup(group), f"clear the group {group!r}")

    def delete_task(self, task_id: str) -> bool:
        """Delete one task and its events; wait for it; return whether it existed."""
        return self._delete("id", task_id) > 0

    def _delete(self, column: str, value: str) -> int:
        return self._counted(Delete(column, value), f"delete the tasks with {column} {value!r}")

    def purge_finished(self, before: datetime, started_by: str | None = None) -> int:
        """Delete the tasks that finished before `before` (only `started_by`'s when given) and
        their events; never a queued or running task. Wait for it; return how many went."""
        purge = Purge(*browse.purge_clause(before, started_by))
        return self._counted(purge, "purge the finished tasks")

    def _counted(self, op: Delete, failure: str) -> int:
        """Queue a write that counts the tasks it changes, wait for it, and return the count;
        StoreError saying what `failure` names if it could not be made."""
        self._writer.submit(op)
        self.flush()
        if op.count is None:
            raise StoreError(f"store: could not {failure}")
        return op.count

    def _apply(self, conn: sqlite3.Connection, batch: list[Op]) -> None:
        """Make one batch's writes in one transaction; the writer thread calls it."""
        apply_batch(conn, batch, self._save_limit)

    # -- reads: `reads.py` -----------------------------------------------------------------------

    def get_task(self, id_or_name: str) -> TaskRecord | None:
        """The task with that id, else the newest task with that name; never waits for writes."""
        return self._reads.get_task(id_or_name)

    def latest_run(self, stream_id: str) -> TaskRecord | None:
        """The newest task with that stream id; never waits for writes."""
        return self._reads.newest("stream_id", stream_id)

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
        return self._reads.list_tasks(
            group=group,
            status=status,
            func=func,
            stream_id=stream_id,
            schedule=schedule,
            started_by=started_by,
            limit=limit,
            offset=offset,
        )

    def count_tasks(
        self,
        *,
        group: str | None = None,
        status: TaskStatus | None = None,
        func: str | None = None,
        started_by: str | None = None,
    ) -> int:
        """How many tasks match."""
        return self._reads.count_tasks(group=group, status=status, func=func, started_by=started_by)

    def search_tasks(
        self,
        query: browse.Search,
        *,
        group: str | None = None,
        status: TaskStatus | None = None,
        func: str | None = None,
        started_by: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[TaskRecord], int]:
        """A page of matching tasks in `query`'s order, and how many match in all
        (`taskcast.store.browse`)."""
        return self._reads.search_tasks(
            query,
            group=group,
            status=status,
            func=func,
            started_by=started_by,
            limit=limit,
            offset=offset,
        )

    def function_stats(
        self, since: datetime, started_by: str | None = None
    ) -> list[browse.FunctionStats]:
        """Per function, how the runs that finished since `since` went (`browse`)."""
        return self._reads.function_stats(since, started_by)

    def count_purgeable(self, before: datetime, started_by: str | None = None) -> int:
        """How many tasks `purge_finished` with these arguments would delete now."""
        return self._reads.count_purgeable(before, started_by)

    def events(
        self, run_id: str, after: int = 0, limit: int | None = None, max_bytes: int | None = None
    ) -> list[tuple[int, str]]:
        """(seq, data_json) of a run's events with seq > after, ascending: at most `limit` of
        them, and no more than `max_bytes` of data once one is taken. Flushes first, blocking,
        only if event writes of this run are still queued."""
        return self._reads.events(run_id, after, limit, max_bytes)

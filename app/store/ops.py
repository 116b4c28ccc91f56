"""The write operations the store queues for its writer thread, and what a batch of them does to
the database.

Each operation is a small `__slots__` object made on the event loop's side; the writer numbers it
when it joins the queue (numbers grow with every enqueue, so they order operations) and tells
them apart by type. `apply_batch` turns a batch into one transaction.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Iterable
from typing import Any, ClassVar

from taskcast.records import TaskRecord, TaskStatus
from taskcast.store import chunks
from taskcast.store.chunks import EventChunk
from taskcast.store.rows import UPSERT


class Op:
    """One queued write."""

    __slots__ = ("number",)

    #: what the operations of this kind are called in a log line, with their count before it
    label: ClassVar[str]

    def __init__(self) -> None:
        self.number = 0  # set when it joins the queue

    @property
    def writes(self) -> int:
        """How many writes it makes (each event counts as one)."""
        return 1

    @property
    def weight(self) -> int:
        """Roughly the bytes it holds, to bound what an outage keeps in memory."""
        return 100


class SaveTask(Op):
    """Insert or replace a task record: `row` as stored, `record` as a read returns it."""

    __slots__ = ("record", "row")
    label = "task record(s)"

    def __init__(self, record: TaskRecord, row: tuple[Any, ...]) -> None:
        super().__init__()
        self.record = record
        self.row = row

    @property
    def task_id(self) -> str:
        return self.record.id

    @property
    def weight(self) -> int:
        return 200 + sum(len(value) for value in self.row if isinstance(value, str | bytes))

    def __repr__(self) -> str:
        return f"<SaveTask #{self.number} {self.record.id} {self.record.status.value}>"


class AppendEvents(Op):
    """Consecutive events of a run. While it waits in the queue, later events join its chunk."""

    __slots__ = ("chunk", "run_id")
    label = "event(s)"

    def __init__(self, run_id: str, chunk: EventChunk) -> None:
        super().__init__()
        self.run_id = run_id
        self.chunk = chunk

    @property
    def writes(self) -> int:
        return len(self.chunk)

    @property
    def weight(self) -> int:
        return 100 * len(self.chunk) + self.chunk.size

    def __repr__(self) -> str:
        return f"<AppendEvents #{self.number} {self.run_id} {self.chunk!r}>"


class TrimEvents(Op):
    """Delete a run's events with keep_head < seq <= its last seq - keep_tail."""

    __slots__ = ("keep_head", "keep_tail", "run_id")
    label = "trim(s)"

    def __init__(self, run_id: str, keep_head: int, keep_tail: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.keep_head = keep_head
        self.keep_tail = keep_tail

    def __repr__(self) -> str:
        return f"<TrimEvents #{self.number} {self.run_id} {self.keep_head}/{self.keep_tail}>"


class KeepEvents(Op):
    """Keep only a run's `head` events and those from seq `tail_from` on: the history bound
    applied to the stored run, as the run goes and at its end."""

    __slots__ = ("head", "run_id", "tail_from")
    label = "trim(s)"

    def __init__(self, run_id: str, head: list[tuple[int, str]], tail_from: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.head = head
        self.tail_from = tail_from

    def __repr__(self) -> str:
        return f"<KeepEvents #{self.number} {self.run_id} {len(self.head)}+{self.tail_from}..>"


class Delete(Op):
    """Delete the tasks whose `column` holds `value`, and their events. The writer sets `count`
    to how many tasks went once the batch commits; it stays None if the batch failed."""

    __slots__ = ("column", "count", "value")
    label = "delete(s)"

    def __init__(self, column: str, value: str) -> None:
        super().__init__()
        self.column = column
        self.value = value
        self.count: int | None = None

    def __repr__(self) -> str:
        return f"<Delete #{self.number} {self.column}={self.value!r}>"


class ClearGroup(Delete):
    """Take the group label off the tasks of a group, keeping them (Django Q's `delete_group`).
    The writer handles it as a delete: waited for, refused rather than kept in an outage; its
    `count` is how many tasks lost the label."""

    __slots__ = ()
    label = "group label(s) cleared"

    def __init__(self, group: str) -> None:
        super().__init__("group_name", group)

    def __repr__(self) -> str:
        return f"<ClearGroup #{self.number} {self.value!r}>"


class Purge(Delete):
    """Delete the finished tasks that a WHERE clause (`taskcast.store.browse.purge_clause`)
    picks, and their events. Handled as a delete: waited for, refused rather than kept in an
    outage; `count` is how many tasks went."""

    __slots__ = ("params",)
    label = "purge(s)"

    def __init__(self, clause: str, params: list[Any]) -> None:
        super().__init__("purge", clause)
        self.params = params

    def __repr__(self) -> str:
        return f"<Purge #{self.number} {self.value}>"


def describe(ops: Iterable[Op]) -> str:
    """A log line's account of some operations: "2 task record(s) (id1, id2), 40 event(s)"."""
    counts: collections.Counter[type[Op]] = collections.Counter()
    tasks: set[str] = set()
    for op in ops:
        counts[type(op)] += op.writes
        if isinstance(op, SaveTask):
            tasks.add(op.task_id)
    named = sorted(tasks)
    ids = " (" + ", ".join(named[:10]) + (", ..." if len(named) > 10 else "") + ")"
    return ", ".join(
        f"{counts[kind]} {kind.label}{ids if kind is SaveTask else ''}"
        for kind in (SaveTask, AppendEvents, TrimEvents, KeepEvents, Delete, ClearGroup, Purge)
        if counts[kind]
    )


def apply_batch(conn: sqlite3.Connection, batch: Iterable[Op], save_limit: int) -> None:
    """Make the writes of a batch in one transaction; then tell each delete its count."""
    conn.execute("BEGIN IMMEDIATE")
    events: list[tuple[str, int, int, str]] = []
    deleted: list[tuple[Delete, int]] = []
    prune = False
    freed = False  # rows were deleted: the file may give the space back
    for op in batch:
        if isinstance(op, AppendEvents):
            events += chunks.rows(op.run_id, op.chunk)  # inserted together, in one executemany
            continue
        if events:  # keep the order: the events before a trim or a delete go in first
            conn.executemany(chunks.INSERT, events)
            events = []
        match op:
            case SaveTask():
                conn.execute(UPSERT, op.row)
                prune = prune or op.record.status is TaskStatus.SUCCESS
            case TrimEvents():
                chunks.trim(conn, op.run_id, op.keep_head, op.keep_tail)
                freed = True
            case KeepEvents():
                chunks.keep(conn, op.run_id, op.head, op.tail_from)
                freed = True
            case ClearGroup():  # before Delete, whose kind it is
                cleared = conn.execute(
                    "UPDATE tasks SET group_name = NULL WHERE group_name = ?", (op.value,)
                )
                deleted.append((op, cleared.rowcount))
            case Purge():  # before Delete, whose kind it is
                ids = conn.execute(f"SELECT id FROM tasks WHERE {op.value}", op.params)
                deleted.append((op, delete_ids(conn, ids.fetchall())))
                freed = True
            case Delete():
                ids = conn.execute(f"SELECT id FROM tasks WHERE {op.column} = ?", (op.value,))
                deleted.append((op, delete_ids(conn, ids.fetchall())))
                freed = True
    if events:
        conn.executemany(chunks.INSERT, events)
    if prune and save_limit != 0:
        # Django Q's save_limit: keep the newest N successes; below zero, keep none.
        old = conn.execute(
            "SELECT id FROM tasks WHERE status = ? ORDER BY stopped DESC, "
            "rowid DESC LIMIT -1 OFFSET ?",
            (TaskStatus.SUCCESS.value, max(save_limit, 0)),
        )
        freed = delete_ids(conn, old.fetchall()) > 0 or freed
    conn.execute("COMMIT")
    for op, count in deleted:  # only now: a failed batch leaves them None
        op.count = count
    if freed:
        reclaim(conn)


#: free pages the file may hold after deletes before they are given back to the file system
RECLAIM_BYTES = 4 * 1024 * 1024


def reclaim(conn: sqlite3.Connection) -> None:
    """Give the space of deleted rows back: the file shrinks by its free pages (the schema is
    created with auto_vacuum=INCREMENTAL), and the WAL, which grew by the deleting transaction,
    is checkpointed and truncated. Only once enough is free: it costs a checkpoint."""
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    if free * page < RECLAIM_BYTES:
        return
    # Each step of the pragma frees one page: executescript steps it to the end.
    conn.executescript("PRAGMA incremental_vacuum")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def delete_ids(conn: sqlite3.Connection, ids: list[tuple[str]]) -> int:
    """Delete these tasks and their events; return how many."""
    conn.executemany(chunks.DELETE_RUN, ids)
    conn.executemany("DELETE FROM tasks WHERE id = ?", ids)
    return len(ids)

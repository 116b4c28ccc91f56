"""Opening the store's database: connections, the schema and its version, the migration, and
the tasks a restart finds unfinished."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from taskcast.errors import StoreError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.store import chunks
from taskcast.store.ops import reclaim
from taskcast.store.rows import COLUMNS, SCHEMA, record_from_row, to_us

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: events stored in chunks (taskcast.store.chunks)
INTERRUPTED_ERROR = "interrupted: the server stopped before the task finished"


def connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    # Autocommit mode: the writer issues BEGIN/COMMIT itself. timeout= is the busy_timeout.
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, fast commits
    return conn


#: auto_vacuum=INCREMENTAL: deleted rows' pages can be given back to the file system
INCREMENTAL = 2


def open_database(
    path: str, busy_timeout: float, run_bound: tuple[int, int, int] | None = None
) -> tuple[sqlite3.Connection, sqlite3.Connection, list[TaskRecord]]:
    """The writer's and the readers' connections (one and the same for ":memory:"), with the
    schema created or migrated, and the tasks that were unfinished, now marked INTERRUPTED.

    `run_bound` is the history bound (keep_head, max_events, max_bytes): the stored events of
    an interrupted run, which never got trimmed at its end, are trimmed to it here."""
    memory = path == ":memory:"
    writer = reader = None
    try:
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        writer = connect(path, busy_timeout)
        if not memory:
            give_space_back(writer, path)  # first: a new file takes it only before WAL
            writer.execute("PRAGMA journal_mode=WAL")
        version = writer.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store: {path} has schema version {version}, "
                f"newer than this code's {SCHEMA_VERSION}"
            )
        writer.execute("BEGIN IMMEDIATE")
        for statement in (SCHEMA + chunks.TABLE).split(";"):  # executescript() commits
            writer.execute(statement)
        if version == 1:
            chunks.migrate_from_rows(writer)
        add_hook_column(writer)
        writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        writer.execute("COMMIT")
        interrupted = interrupt_unfinished(writer)
        if run_bound is not None and interrupted:
            bound_interrupted(writer, [record.id for record in interrupted], run_bound)
        reader = writer if memory else connect(path, busy_timeout)
        if reader is not writer:
            reader.execute("PRAGMA query_only = ON")
    except (OSError, sqlite3.Error, StoreError) as exc:
        for conn in (writer, reader):  # closing twice (":memory:") is harmless
            if conn is not None:
                conn.close()
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"store: cannot open {path}: {exc}") from exc
    return writer, reader, interrupted


def add_hook_column(conn: sqlite3.Connection) -> None:
    """Give a database made before tasks recorded their hook the column for it (NULL: none)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(tasks)")}
    if "hook" not in columns:
        conn.execute("ALTER TABLE tasks ADD COLUMN hook TEXT")


def interrupt_unfinished(conn: sqlite3.Connection) -> list[TaskRecord]:
    """Mark the tasks still queued or running as INTERRUPTED: their process is gone."""
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


def give_space_back(conn: sqlite3.Connection, path: str) -> None:
    """Make the file one that can shrink after deletes (auto_vacuum=INCREMENTAL). A new file
    just takes the setting; a file made before it is rewritten once by VACUUM, which takes a
    while for a large file and needs as much free disk again."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
        return
    conn.execute(f"PRAGMA auto_vacuum = {INCREMENTAL}")
    if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
        logger.warning("store: converting %s to auto_vacuum=INCREMENTAL (a one-off VACUUM)", path)
        conn.execute("VACUUM")


def bound_interrupted(
    conn: sqlite3.Connection, run_ids: list[str], run_bound: tuple[int, int, int]
) -> None:
    """Trim the stored events of interrupted runs to the history bound, as their end would have."""
    keep_head, max_events, max_bytes = run_bound
    dropped = 0
    for run_id in run_ids:
        conn.execute("BEGIN IMMEDIATE")
        dropped += chunks.bound_run(conn, run_id, keep_head, max_events, max_bytes)
        conn.execute("COMMIT")
    if dropped:
        logger.info("store: trimmed %d events of %d interrupted run(s)", dropped, len(run_ids))
        reclaim(conn)

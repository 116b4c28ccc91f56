"""Tests of failed writes: one write SQLite refuses, and outages (a full disk, a locked file) whose
writes are kept in memory, bounded, and retried."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskcast.errors import StoreError
from taskcast.records import TaskStatus
from taskcast.store.store import Store
from tests.store.conftest import T0, MakeStore, done, sql, task
from tests.support.eventually import eventually_sync


def test_a_write_sqlite_refuses_is_given_up_alone(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "data" / "tasks.db"
    store.save_task(done(1, result="kept"))
    store.append_event("id1", 1, "{}")
    store.flush()
    sql(
        db,
        "CREATE TRIGGER refuse_id2 BEFORE INSERT ON tasks WHEN NEW.id = 'id2' "
        "BEGIN SELECT RAISE(ABORT, 'id2 is refused'); END",
    )
    with caplog.at_level(logging.ERROR, logger="taskcast.store"):
        for n in (2, 3, 4):  # one batch; only id2 fails
            store.save_task(done(n, error="Traceback: boom" if n == 2 else None))
            store.append_event(f"id{n}", 1, "{}")
        store.flush()
    assert store.write_errors == 1
    [log] = caplog.records
    assert log.getMessage() == "store: gave up saving 1 task record(s) (id2): id2 is refused"
    marked = store.get_task("id2")
    assert marked is not None and marked.status is TaskStatus.SUCCESS
    assert marked.error == "could not be saved: id2 is refused\n\nTraceback: boom"
    assert store.events("id2") == [(1, "{}")]  # its events were not refused
    assert store.get_task("id3") == done(3) and store.get_task("id4") == done(4)
    assert sql(db, "SELECT id FROM tasks ORDER BY id") == [("id1",), ("id3",), ("id4",)]
    sql(db, "DROP TRIGGER refuse_id2")
    store.save_task(done(2, result="second try"))  # a newer record replaces the mark
    store.flush()
    assert store.get_task("id2") == done(2, result="second try")
    assert store.get_task("id1") == done(1, result="kept")
    assert store.write_errors == 1


def test_text_sqlite_cannot_hold_is_refused_without_harm(store: Store) -> None:
    assert store.get_task("\ud800") is None
    assert store.latest_run("bad\udfff") is None
    assert store.events("\ud800") == []
    store.save_task(task(1, stream_id="bad\ud800"))
    store.save_task(task(2))
    store.flush()
    assert store.get_task("id2") == task(2)
    marked = store.get_task("id1")
    assert marked is not None and marked.error is not None
    assert marked.error.startswith("could not be saved: 'utf-8' codec can't encode")


class SmallDisk(Store):
    """A store whose file cannot grow past `pages` pages (SQLite's max_page_count), as on a full
    disk; `pages` is applied by the writer thread before each batch."""

    pages = 10**9

    def _apply(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        conn.execute(f"PRAGMA max_page_count = {self.pages}")  # never below the file's size
        super()._apply(conn, batch)


def integrity(db: Path) -> list[Any]:
    return sql(db, "PRAGMA integrity_check")


@pytest.fixture
def fill_disk(tmp_path: Path) -> Iterator[Callable[..., SmallDisk]]:
    """Opens a SmallDisk store at full.db, saves one finished task (id1), then fills the disk."""
    stores: list[SmallDisk] = []

    def make(**options: Any) -> SmallDisk:
        store = SmallDisk(tmp_path / "full.db", **{"retry_delay": 0.05, **options})
        stores.append(store)
        store.open()
        store.save_task(done(1, result="before"))
        store.append_event("id1", 1, '"first"')
        store.flush()
        store.pages = 1  # no room for one more page
        return store

    yield make
    for store in stores:
        store.close()


def test_a_full_disk_keeps_writes_in_memory_and_saves_them_later(
    fill_disk: Callable[..., SmallDisk], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, db = fill_disk(max_retry_delay=0.1), tmp_path / "full.db"
    caplog.set_level(logging.WARNING, logger="taskcast.store")
    big = "x" * 5000  # each event needs a page of its own
    store.save_task(task(2, status=TaskStatus.RUNNING, started=T0))
    for seq in range(1, 21):
        store.append_event("id2", seq, f'"{big}{seq}"')
    store.save_task(done(2, result="after"))
    began = time.monotonic()
    store.flush()
    assert time.monotonic() - began < 2, "flush waited for the disk"
    # Nothing was lost: reads answer from memory, in order, the newest record winning.
    assert store.kept_writes == 22
    assert store.get_task("id2") == done(2, result="after")
    assert [seq for seq, _ in store.events("id2")] == list(range(1, 21))
    assert store.events("id2", after=18) == [(19, f'"{big}19"'), (20, f'"{big}20"')]
    assert store.events("id2", after=5, limit=2)[0][0] == 6
    assert store.get_task("id1") == done(1, result="before")
    assert store.count_tasks() == 1  # listings show the file and do not wait for the disk
    assert store.write_errors >= 1
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "database or disk is full; 22 writes are kept in memory and retried" in error.message
    store.save_task(done(3))  # joins the kept writes without waiting for the retry
    store.flush()
    assert store.kept_writes == 23
    store.pages = 10**9  # room again
    eventually_sync(lambda: store.kept_writes == 0, 10)
    store.flush()
    assert sql(db, "SELECT id, status FROM tasks ORDER BY id") == [
        ("id1", "success"),
        ("id2", "success"),
        ("id3", "success"),
    ]
    assert sql(
        db, "SELECT SUM(last_seq - first_seq + 1) FROM event_chunks WHERE run_id = 'id2'"
    ) == [(20,)]
    assert any("works again" in r.message for r in caplog.records if r.levelno == logging.WARNING)
    assert integrity(db) == [("ok",)]


def test_a_locked_database_keeps_writes_until_the_lock_goes(
    make_store: MakeStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "locked.db"
    store = make_store(db, busy_timeout=0.05, retry_delay=0.05, max_retry_delay=0.1)
    store.save_task(done(1))
    store.flush()
    caplog.set_level(logging.WARNING, logger="taskcast.store")
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")  # another program holds the file
        for n in range(2, 6):
            store.save_task(done(n))
        store.flush()
        eventually_sync(lambda: store.kept_writes == 4, 10)
        assert [store.get_task(f"id{n}") for n in range(2, 6)] == [done(n) for n in range(2, 6)]
        assert "database is locked" in caplog.text
        with pytest.raises(StoreError, match="could not delete"):
            store.delete_task("id1")  # tried at once, refused, and not retried later
        assert "gave up saving 1 delete(s): database is locked" in caplog.text
        other.execute("COMMIT")
    eventually_sync(lambda: store.kept_writes == 0, 10)
    eventually_sync(lambda: "works again" in caplog.text, 10)
    assert store.count_tasks() == 5
    assert store.get_task("id1") == done(1)


def test_the_writes_kept_in_memory_are_bounded(
    fill_disk: Callable[..., SmallDisk], caplog: pytest.LogCaptureFixture
) -> None:
    store = fill_disk(retry_delay=60, max_kept_bytes=20_000)
    caplog.set_level(logging.ERROR, logger="taskcast.store")
    store.save_task(task(2, status=TaskStatus.RUNNING))
    for seq in range(1, 11):
        store.append_event("id2", seq, '"' + "e" * 1000 + '"')
    store.flush()
    store.save_task(done(2, output="o" * 4000))  # the RUNNING record is now superseded
    for n in range(3, 8):
        store.save_task(done(n, output="o" * 4000))
    store.flush()
    assert store.kept_writes < 17
    # Events and the superseded record went first; then the oldest task records.
    assert "event(s)" in caplog.text and "waited for the disk" in caplog.text
    records = {n: store.get_task(f"id{n}") for n in range(2, 8)}
    marked = [n for n, r in records.items() if r is not None and r.error]
    assert marked == list(range(2, 2 + len(marked))) and 1 <= len(marked) <= 4
    reason = "could not be saved: more than 20000 bytes of writes waited for the disk"
    assert all(records[n].error == reason for n in marked)  # type: ignore[union-attr]
    assert all(r is not None and r.status is TaskStatus.SUCCESS for r in records.values())
    assert store.get_task("id7") == done(7, output="o" * 4000)  # the newest are kept


def test_close_in_an_outage_tries_once_more_then_gives_up(
    fill_disk: Callable[..., SmallDisk], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, db = fill_disk(), tmp_path / "full.db"
    store.save_task(done(2))
    store.append_event("id2", 1, '"' + "z" * 5000 + '"')
    store.flush()
    eventually_sync(lambda: store.kept_writes == 2, 10)
    caplog.set_level(logging.ERROR, logger="taskcast.store")
    store.close()
    assert "gave up saving 1 task record(s) (id2), 1 event(s)" in caplog.text
    assert "the server stopped before it could retry" in caplog.text
    assert sql(db, "SELECT id FROM tasks") == [("id1",)]
    assert integrity(db) == [("ok",)]
    again = Store(db)
    again.open()
    try:
        assert again.get_task("id1") == done(1, result="before")
        assert again.events("id1") == [(1, '"first"')]
    finally:
        again.close()

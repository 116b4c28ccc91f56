"""Tests of the store's life cycle: opening a file or memory, the writer thread's batches and
flushes, and closing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskcast.errors import StoreError
from taskcast.records import TaskStatus
from taskcast.store.store import INTERRUPTED_ERROR, Store
from tests.store.conftest import T0, MakeStore, done, sql, task


def test_open_marks_unfinished_tasks_interrupted(make_store: MakeStore, tmp_path: Path) -> None:
    store = make_store()
    store.save_task(task(1, status=TaskStatus.QUEUED))
    store.save_task(task(2, status=TaskStatus.RUNNING, started=T0))
    store.save_task(done(3))
    store.save_task(done(4, TaskStatus.FAILED, error="boom"))
    store.close()
    before = datetime.now(UTC)
    again = Store(tmp_path / "data" / "tasks.db")
    try:
        interrupted = again.open()
        assert [r.id for r in interrupted] == ["id1", "id2"]
        for record in interrupted:
            assert record.status is TaskStatus.INTERRUPTED
            assert record.error == INTERRUPTED_ERROR
            assert record.stopped is not None and record.stopped >= before
            assert again.get_task(record.id) == record
        assert again.get_task("id3") == done(3)
        assert again.get_task("id4") == done(4, TaskStatus.FAILED, error="boom")
    finally:
        again.close()


def test_a_file_database_uses_wal(store: Store, tmp_path: Path) -> None:
    assert sql(tmp_path / "data" / "tasks.db", "PRAGMA journal_mode") == [("wal",)]
    assert sql(tmp_path / "data" / "tasks.db", "PRAGMA user_version") == [(2,)]


def test_memory_database(make_store: MakeStore) -> None:
    store = make_store(":memory:")
    store.save_task(done(1, group="g"))
    store.append_event("id1", 1, "{}")
    store.flush()
    assert store.get_task("id1") == done(1, group="g")
    assert store.events("id1") == [(1, "{}")]
    assert store.delete_group("g") == 1
    assert store.count_tasks() == 0


def test_twenty_thousand_events_all_land(store: Store) -> None:
    for seq in range(1, 20_001):
        store.append_event("busy", seq, '{"line": "output"}')
    store.flush()
    events = store.events("busy")
    assert len(events) == 20_000
    assert [seq for seq, _ in events] == list(range(1, 20_001))


async def test_aflush_waits_without_blocking(store: Store) -> None:
    for seq in range(1, 1001):
        store.append_event("run", seq, "{}")
    await store.aflush()
    await store.aflush()  # nothing pending: returns at once
    assert len(store.events("run")) == 1000


def test_close_is_idempotent_and_writes_after_close_raise(store: Store) -> None:
    store.append_event("run", 1, "{}")
    store.close()
    store.close()
    store.flush()
    with pytest.raises(StoreError, match="store is closed"):
        store.save_task(task(1))
    with pytest.raises(StoreError, match="store is closed"):
        store.append_event("run", 2, "{}")
    with pytest.raises(StoreError, match="store is closed"):
        store.trim_events("run", 0, 0)


def test_a_file_from_before_hooks_were_recorded_gets_the_column_and_keeps_its_tasks(
    make_store: MakeStore, tmp_path: Path
) -> None:
    path = tmp_path / "before-hooks.db"
    store = make_store(path)
    store.save_task(done(1, result=41))
    store.close()
    sql(path, "ALTER TABLE tasks DROP COLUMN hook")  # the table as an older Taskcast made it
    assert "hook" not in [row[1] for row in sql(path, "PRAGMA table_info(tasks)")]

    reopened = make_store(path)
    assert "hook" in [row[1] for row in sql(path, "PRAGMA table_info(tasks)")]
    old = reopened.get_task("id1")
    assert old is not None and old.result == 41 and old.hook is None
    reopened.save_task(done(2, hook="tests.support.sample_tasks.add"))
    reopened.flush()
    saved = reopened.get_task("id2")
    assert saved is not None and saved.hook == "tests.support.sample_tasks.add"

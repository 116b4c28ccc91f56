"""Tests of taskcast.store.store: persistence of task records and stream events, batching, retention."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from taskcast.errors import StoreError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.store.store import INTERRUPTED_ERROR, Store

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
MakeStore = Callable[..., Store]


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[MakeStore]:
    """Opens stores (default: a file in a folder that does not exist yet) and closes them all."""
    stores: list[Store] = []

    def make(path: str | Path | None = None, **options: Any) -> Store:
        store = Store(tmp_path / "data" / "tasks.db" if path is None else path, **options)
        stores.append(store)
        store.open()
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()


def task(n: int, **changes: Any) -> TaskRecord:
    """A task record; task n is enqueued n seconds after T0."""
    record = TaskRecord(
        id=f"id{n}", name=f"name{n}", func="tasks.work", enqueued=T0 + timedelta(seconds=n)
    )
    return record.replace(**changes)


def done(n: int, status: TaskStatus = TaskStatus.SUCCESS, **changes: Any) -> TaskRecord:
    """A finished task record; task n stopped n seconds after T0."""
    return task(n, status=status, started=T0, stopped=T0 + timedelta(seconds=n), **changes)


def sql(path: Path, statement: str) -> list[Any]:
    """Run one statement on a connection of our own, as another process would."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(statement).fetchall()


def test_every_field_round_trips_through_the_file(make_store: MakeStore, tmp_path: Path) -> None:
    record = TaskRecord(
        id="abc",
        name="report",
        func="tasks.report",
        args=(1, "two", [3]),
        kwargs={"x": {"y": 2}},
        group="reports",
        stream_id="s1",
        kind="process",
        status=TaskStatus.FAILED,
        enqueued=T0,
        started=T0 + timedelta(microseconds=1),
        stopped=T0 + timedelta(hours=1),
        result={"rows": [1, 2]},
        error="Traceback...",
        attempt_count=3,
        output="line 1\nline 2\n",
    )
    store = make_store()
    store.save_task(record)
    store.close()
    loaded = make_store().get_task("abc")
    assert loaded == record
    assert loaded is not None and loaded.stopped is not None
    assert loaded.stopped.tzinfo is not None


@pytest.mark.parametrize("result", [None, 0, False, [], "", 0.0])
def test_falsy_results_are_kept_as_they_are(store: Store, result: Any) -> None:
    store.save_task(done(1, result=result))
    store.flush()
    loaded = store.get_task("id1")
    assert loaded is not None
    assert loaded.result == result and type(loaded.result) is type(result)


def test_reads_see_writes_that_are_not_committed_yet(store: Store, tmp_path: Path) -> None:
    # Another connection holds the write lock, so the writer waits (busy_timeout) and nothing
    # commits until it lets go.
    with contextlib.closing(
        sqlite3.connect(tmp_path / "data" / "tasks.db", isolation_level=None)
    ) as blocker:
        blocker.execute("BEGIN IMMEDIATE")
        store.save_task(task(1, stream_id="live"))
        store.save_task(task(1, stream_id="live", status=TaskStatus.RUNNING))
        store.save_task(task(0))
        running = task(1, stream_id="live", status=TaskStatus.RUNNING)
        assert store.get_task("id1") == running
        assert store.get_task("name1") == running
        assert store.latest_run("live") == running
        assert store.get_task("id0") == task(0)
        assert sql(tmp_path / "data" / "tasks.db", "SELECT COUNT(*) FROM tasks") == [(0,)]
        blocker.execute("COMMIT")
    assert store.count_tasks() == 2  # flushes first
    assert [r.id for r in store.list_tasks()] == ["id1", "id0"]
    assert store.write_errors == 0


def test_name_lookup_returns_the_newest_task(store: Store) -> None:
    store.save_task(task(1, name="nightly"))
    store.save_task(task(3, name="nightly"))
    store.save_task(task(2, name="nightly"))
    store.flush()
    newest = store.get_task("nightly")
    assert newest is not None and newest.id == "id3"
    assert store.get_task("nothing") is None


def test_an_unpicklable_result_raises_and_stores_nothing(store: Store) -> None:
    with pytest.raises(StoreError, match="id1") as info:
        store.save_task(done(1, result=threading.Lock()))
    assert "pickle" in str(info.value)
    store.flush()
    assert store.get_task("id1") is None
    assert store.count_tasks() == 0


def test_a_result_larger_than_the_limit_raises(make_store: MakeStore) -> None:
    store = make_store(max_value_bytes=1000)
    with pytest.raises(StoreError, match=r"id1.*1000"):
        store.save_task(done(1, result="x" * 2000))
    store.save_task(done(2, result="x" * 100))
    store.flush()
    assert store.get_task("id1") is None
    assert store.get_task("id2") is not None


def test_unpicklable_args_are_stored_as_their_repr(store: Store) -> None:
    lock = threading.Lock()
    store.save_task(task(1, args=(lock,), kwargs={"lock": lock}))
    pending = store.get_task("id1")
    store.flush()
    loaded = store.get_task("id1")
    assert loaded is not None and loaded == pending
    assert loaded.args == (repr((lock,)),)
    assert loaded.kwargs == {"__repr__": repr({"lock": lock})}


def test_events_come_back_ascending_after_a_restart(make_store: MakeStore) -> None:
    store = make_store()
    for seq in (3, 1, 2, 5, 4):
        store.append_event("run", seq, f'{{"n": {seq}}}')
    store.append_event("other", 1, "{}")
    assert store.events("run", after=2) == [(3, '{"n": 3}'), (4, '{"n": 4}'), (5, '{"n": 5}')]
    store.close()
    again = make_store()
    assert [seq for seq, _ in again.events("run")] == [1, 2, 3, 4, 5]
    assert again.events("run", after=1, limit=2) == [(2, '{"n": 2}'), (3, '{"n": 3}')]
    assert again.events("nothing") == []


def test_trim_events_keeps_the_head_and_the_tail(store: Store) -> None:
    for seq in range(1, 11):
        store.append_event("run", seq, "{}")
    store.trim_events("run", keep_head=2, keep_tail=3)
    store.append_event("run", 11, "{}")
    assert [seq for seq, _ in store.events("run")] == [1, 2, 8, 9, 10, 11]


def test_twenty_thousand_events_all_land(store: Store) -> None:
    for seq in range(1, 20_001):
        store.append_event("busy", seq, '{"line": "output"}')
    store.flush()
    events = store.events("busy")
    assert len(events) == 20_000
    assert [seq for seq, _ in events] == list(range(1, 20_001))


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


def test_save_limit_keeps_the_newest_successes_and_every_failure(make_store: MakeStore) -> None:
    store = make_store(save_limit=2)
    for n in range(1, 6):
        store.save_task(done(n))
        store.append_event(f"id{n}", 1, "{}")
        store.save_task(done(10 + n, TaskStatus.FAILED))
    store.save_task(done(20, TaskStatus.CANCELLED))
    store.flush()
    kept = {r.id for r in store.list_tasks(status=TaskStatus.SUCCESS)}
    assert kept == {"id4", "id5"}
    assert store.count_tasks(status=TaskStatus.FAILED) == 5
    assert store.count_tasks(status=TaskStatus.CANCELLED) == 1
    assert store.events("id1") == []
    assert store.events("id5") == [(1, "{}")]


def test_save_limit_zero_keeps_every_success(make_store: MakeStore) -> None:
    store = make_store(save_limit=0)
    for n in range(1, 6):
        store.save_task(done(n))
    assert store.count_tasks(status=TaskStatus.SUCCESS) == 5


def test_negative_save_limit_keeps_no_success(make_store: MakeStore) -> None:
    store = make_store(save_limit=-1)
    store.save_task(task(1, status=TaskStatus.RUNNING))
    store.append_event("id1", 1, "{}")
    store.flush()
    assert store.get_task("id1") is not None
    store.save_task(done(1))
    store.save_task(done(2, TaskStatus.TIMED_OUT))
    store.flush()
    assert store.get_task("id1") is None
    assert store.events("id1") == []
    assert store.count_tasks() == 1


def test_delete_group_removes_its_tasks_and_their_events(store: Store) -> None:
    for n in range(1, 4):
        store.save_task(done(n, group="g"))
        store.append_event(f"id{n}", 1, "{}")
    store.save_task(done(4, group="other"))
    store.append_event("id4", 1, "{}")
    assert store.delete_group("g") == 3
    assert store.delete_group("g") == 0
    assert store.count_tasks() == 1
    assert store.events("id1") == []
    assert store.events("id4") == [(1, "{}")]


def test_delete_task(store: Store) -> None:
    store.save_task(done(1))
    store.append_event("id1", 1, "{}")
    assert store.delete_task("id1") is True
    assert store.delete_task("id1") is False
    assert store.get_task("id1") is None
    assert store.events("id1") == []


def test_memory_database(make_store: MakeStore) -> None:
    store = make_store(":memory:")
    store.save_task(done(1, group="g"))
    store.append_event("id1", 1, "{}")
    store.flush()
    assert store.get_task("id1") == done(1, group="g")
    assert store.events("id1") == [(1, "{}")]
    assert store.delete_group("g") == 1
    assert store.count_tasks() == 0


def test_list_and_count_filter_and_page_newest_first(store: Store) -> None:
    for n in range(1, 11):
        status = TaskStatus.SUCCESS if n % 2 else TaskStatus.FAILED
        store.save_task(
            done(
                n, status, group="odd" if n % 2 else "even", func=f"f{n % 3}", stream_id=f"s{n % 2}"
            )
        )
    assert [r.id for r in store.list_tasks(limit=3)] == ["id10", "id9", "id8"]
    assert [r.id for r in store.list_tasks(limit=3, offset=3)] == ["id7", "id6", "id5"]
    assert [r.id for r in store.list_tasks(group="odd", limit=2)] == ["id9", "id7"]
    assert [r.id for r in store.list_tasks(status=TaskStatus.FAILED, func="f1")] == ["id10", "id4"]
    assert [r.id for r in store.list_tasks(stream_id="s1", offset=4)] == ["id1"]
    assert store.count_tasks() == 10
    assert store.count_tasks(group="even") == 5
    assert store.count_tasks(group="even", status=TaskStatus.SUCCESS) == 0
    latest = store.latest_run("s0")
    assert latest is not None and latest.id == "id10"
    assert store.latest_run("nothing") is None


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


class SmallDisk(Store):
    """A store whose file cannot grow past `pages` pages (SQLite's max_page_count), as on a full
    disk; `pages` is applied by the writer thread before each batch."""

    pages = 10**9

    def _apply(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        conn.execute(f"PRAGMA max_page_count = {self.pages}")  # never below the file's size
        super()._apply(conn, batch)


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


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
    wait_until(lambda: store.kept_writes == 0)
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
        wait_until(lambda: store.kept_writes == 4)
        assert [store.get_task(f"id{n}") for n in range(2, 6)] == [done(n) for n in range(2, 6)]
        assert "database is locked" in caplog.text
        with pytest.raises(StoreError, match="could not delete"):
            store.delete_task("id1")  # tried at once, refused, and not retried later
        assert "gave up saving 1 delete(s): database is locked" in caplog.text
        other.execute("COMMIT")
    wait_until(lambda: store.kept_writes == 0)
    wait_until(lambda: "works again" in caplog.text)
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
    wait_until(lambda: store.kept_writes == 2)
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


def test_a_file_database_uses_wal(store: Store, tmp_path: Path) -> None:
    assert sql(tmp_path / "data" / "tasks.db", "PRAGMA journal_mode") == [("wal",)]
    assert sql(tmp_path / "data" / "tasks.db", "PRAGMA user_version") == [(2,)]


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


async def test_aflush_waits_without_blocking(store: Store) -> None:
    for seq in range(1, 1001):
        store.append_event("run", seq, "{}")
    await store.aflush()
    await store.aflush()  # nothing pending: returns at once
    assert len(store.events("run")) == 1000


def test_schedule_and_started_by_round_trip_and_filter(store: Store) -> None:
    from taskcast.records import TaskRecord

    record = TaskRecord(id="sched1", name="n", func="f", schedule="nightly", started_by="ann")
    store.save_task(record)
    store.save_task(TaskRecord(id="other", name="m", func="f", started_by="bob"))
    store.flush()
    got = store.get_task("sched1")
    assert got is not None and got.schedule == "nightly" and got.started_by == "ann"
    assert [r.id for r in store.list_tasks(schedule="nightly")] == ["sched1"]
    assert [r.id for r in store.list_tasks(started_by="bob")] == ["other"]
    assert store.count_tasks(started_by="ann") == 1

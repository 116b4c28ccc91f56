"""Tests of the store's reads: records and events read back as written, before and after their
commit, and listings that filter and page."""

from __future__ import annotations

import contextlib
import pickle
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from taskcast.errors import StoreError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.store.rows import PickledArgs
from taskcast.store.store import Store
from tests.store.conftest import T0, MakeStore, done, sql, task


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


def test_a_save_reuses_the_pickles_of_the_args_it_is_given(make_store: MakeStore) -> None:
    store = make_store(max_value_bytes=1000)
    lock = threading.Lock()
    given = PickledArgs(pickle.dumps((1, 2)), pickle.dumps({"k": "v"}))
    # The record's own args would not pickle: the given pickles are what is stored.
    assert store.save_task(task(1, args=(lock,), kwargs={"k": lock}), given) is given
    made = store.save_task(task(2, args=(1,), kwargs={"big": "x" * 2000}))
    assert made.args is not None and pickle.loads(made.args) == (1,)
    assert made.kwargs is not None and len(made.kwargs) > 1000
    # A pickle over the limit, or none (the args did not pickle), is stored as the repr.
    store.save_task(task(2, status=TaskStatus.RUNNING, args=(1,), kwargs={"big": "x" * 2000}), made)
    store.save_task(task(3, args=(lock,)), PickledArgs(None, pickle.dumps({})))
    store.flush()
    first, second, third = (store.get_task(f"id{n}") for n in (1, 2, 3))
    assert first is not None and (first.args, first.kwargs) == ((1, 2), {"k": "v"})
    assert second is not None and second.status is TaskStatus.RUNNING
    assert second.args == (1,) and second.kwargs == {"__repr__": repr({"big": "x" * 2000})}
    assert third is not None and third.args == (repr((lock,)),) and third.kwargs == {}


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


@pytest.mark.parametrize("field", ["group", "func", "started_by"])
def test_a_lone_surrogate_in_a_filter_matches_nothing(store: Store, field: str) -> None:
    # Text SQLite cannot hold is no error of the reader's: no stored task can have it.
    store.save_task(task(1))
    filters: dict[str, Any] = {"group": None, "status": None, "func": None, "started_by": None}
    filters[field] = "\ud800"
    assert store.count_tasks(**filters) == 0
    assert store.list_tasks(**filters, limit=10, offset=0) == []

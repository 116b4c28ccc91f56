"""Browsing the store: free-text search and sorting, statistics per function, and the purge of
old finished records that never touches a queued or running task."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskcast.errors import StoreError
from taskcast.records import TaskStatus
from taskcast.store.browse import Search, percentile, window
from taskcast.store.store import Store

from .conftest import T0, MakeStore, done, sql, task


def ids(store: Store, query: Search, **filters: object) -> list[str]:
    records, total = store.search_tasks(query, **filters)  # type: ignore[arg-type]
    assert total == len(records)
    return [record.id for record in records]


def test_search_matches_an_id_prefix_name_function_and_argument_values(store: Store) -> None:
    store.save_task(task(1, name="nightly report", args=("invoice-2024",)))
    store.save_task(task(2, func="billing.send_mail", kwargs={"to": "Ann@Example.org"}))
    store.save_task(task(3, args=(42, 3.5)))
    store.save_task(task(4, id="abcdef99"))
    assert ids(store, Search("REPORT")) == ["id1"]  # any case
    assert ids(store, Search("invoice-20")) == ["id1"]  # inside an argument
    assert ids(store, Search("send_mail")) == ["id2"]
    assert ids(store, Search("ann@example")) == ["id2"]  # a keyword argument's value
    assert ids(store, Search("42")) == ["id3"]  # numbers are found as written
    assert ids(store, Search("abcd")) == ["abcdef99"]  # an id prefix...
    assert ids(store, Search("cdef")) == []  # ...not any part of it
    assert ids(store, Search("100%_")) == []  # LIKE's wildcards are plain text
    assert ids(store, Search(None)) == ["abcdef99", "id3", "id2", "id1"]


def test_search_keeps_the_equality_filters_and_pages(store: Store) -> None:
    for n in range(1, 6):
        store.save_task(done(n, group="g" if n % 2 else None, args=("same",)))
    records, total = store.search_tasks(Search("same"), group="g", limit=2, offset=0)
    assert [r.id for r in records] == ["id5", "id3"] and total == 3
    records, total = store.search_tasks(Search("same"), group="g", limit=2, offset=2)
    assert [r.id for r in records] == ["id1"] and total == 3


def test_sorts_each_way_with_unfinished_tasks_last_in_time_orders(store: Store) -> None:
    ok = TaskStatus.SUCCESS
    store.save_task(task(1, name="b", status=ok, started=T0, stopped=T0 + timedelta(seconds=9)))
    store.save_task(task(2, name="C", status=ok, started=T0, stopped=T0 + timedelta(seconds=1)))
    store.save_task(task(3, name="a", status=ok, started=T0, stopped=T0 + timedelta(seconds=5)))
    store.save_task(task(4, name="d"))  # queued: no start, no end
    assert ids(store, Search(sort="name", descending=False)) == ["id3", "id1", "id2", "id4"]
    assert ids(store, Search(sort="name")) == ["id4", "id2", "id1", "id3"]
    assert ids(store, Search(sort="took")) == ["id1", "id3", "id2", "id4"]
    assert ids(store, Search(sort="took", descending=False)) == ["id2", "id3", "id1", "id4"]
    assert ids(store, Search(sort="finished")) == ["id1", "id3", "id2", "id4"]
    assert ids(store, Search(sort="queued", descending=False)) == ["id1", "id2", "id3", "id4"]
    with pytest.raises(ValueError, match="sort must be one of"):
        Search(sort="rowid; DROP TABLE tasks")


def test_a_lone_surrogate_matches_nothing(store: Store) -> None:
    store.save_task(task(1))
    assert store.search_tasks(Search("\ud800")) == ([], 0)


def test_statistics_per_function_over_a_window(store: Store) -> None:
    now = datetime.now(UTC)

    def run(n: int, func: str, seconds: float, status: TaskStatus, ago: float = 60) -> None:
        stopped = now - timedelta(seconds=ago)
        store.save_task(
            task(
                n,
                func=func,
                status=status,
                started=stopped - timedelta(seconds=seconds),
                stopped=stopped,
            )
        )

    for n, seconds in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], start=1):
        run(n, "a.work", seconds, TaskStatus.FAILED if n in (3, 7) else TaskStatus.SUCCESS)
    run(11, "a.work", 100, TaskStatus.SUCCESS, ago=3 * 3600)  # outside a 1 h window
    run(12, "b.other", 0.5, TaskStatus.TIMED_OUT)
    run(13, "b.other", 1.5, TaskStatus.CANCELLED)
    store.save_task(task(14, func="b.other", status=TaskStatus.CANCELLED, stopped=now))  # never ran
    store.save_task(task(15, func="c.running", status=TaskStatus.RUNNING, started=now))
    stats = {s.func: s for s in store.function_stats(now - timedelta(hours=1))}
    assert set(stats) == {"a.work", "b.other"}
    work = stats["a.work"]
    assert (work.runs, work.succeeded, work.failed, work.cancelled) == (10, 8, 2, 0)
    assert work.failure_rate == pytest.approx(0.2)
    assert work.p50 == pytest.approx(5) and work.p95 == pytest.approx(10)
    other = stats["b.other"]
    assert (other.runs, other.succeeded, other.failed, other.cancelled) == (3, 0, 1, 2)
    assert other.p50 == pytest.approx(0.5) and other.p95 == pytest.approx(1.5)
    longer = {s.func: s for s in store.function_stats(now - timedelta(hours=4))}
    assert longer["a.work"].runs == 11 and longer["a.work"].p95 == pytest.approx(100)


def test_statistics_count_only_one_owners_tasks_when_asked(store: Store) -> None:
    now = datetime.now(UTC)
    for n, owner in enumerate(["ann", "bob", "ann"], start=1):
        ok = TaskStatus.SUCCESS
        store.save_task(task(n, status=ok, started=now, stopped=now, started_by=owner))
    [ann] = store.function_stats(now - timedelta(minutes=1), started_by="ann")
    assert ann.runs == 2


def test_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([float(n) for n in range(1, 101)], 95) == 95.0


def test_purge_takes_old_finished_records_and_their_events_only(make_store: MakeStore) -> None:
    store = make_store()
    cutoff = T0 + timedelta(seconds=10)
    store.save_task(done(1))  # finished before the cutoff
    store.save_task(done(2, TaskStatus.FAILED))  # finished before the cutoff
    store.save_task(done(20))  # finished after it
    store.save_task(task(3, status=TaskStatus.QUEUED))  # old, but waiting
    store.save_task(task(4, status=TaskStatus.RUNNING, started=T0))  # old, but running
    store.append_events("id1", 1, ['"one"', '"two"'])
    store.append_events("id4", 1, ['"live"'])
    assert store.count_purgeable(cutoff) == 2
    assert store.purge_finished(cutoff) == 2
    assert store.get_task("id1") is None and store.get_task("id2") is None
    assert store.events("id1") == []
    assert store.get_task("id20") is not None
    queued, running = store.get_task("id3"), store.get_task("id4")
    assert queued is not None and queued.status is TaskStatus.QUEUED
    assert running is not None and running.status is TaskStatus.RUNNING
    assert store.events("id4") == [(1, '"live"')]
    assert store.purge_finished(cutoff) == 0  # nothing left to purge


def test_purge_of_one_owner_leaves_the_others(store: Store) -> None:
    store.save_task(done(1, started_by="ann"))
    store.save_task(done(2, started_by="bob"))
    assert store.purge_finished(T0 + timedelta(hours=1), started_by="ann") == 1
    assert store.get_task("id2") is not None


def test_windows_are_read_strictly() -> None:
    assert window("90m") == timedelta(minutes=90)
    assert window("24h") == timedelta(days=1)
    assert window("7d") == timedelta(days=7)
    for bad in ("", "h", "0h", "-1h", "1.5h", "7w", "\uff11h", "400d", "99999d"):
        with pytest.raises(ValueError, match="window"):
            window(bad)


def test_a_purge_the_disk_refuses_deletes_nothing_and_is_not_retried(
    make_store: MakeStore, tmp_path: Path
) -> None:
    db = tmp_path / "locked.db"
    store = make_store(db, busy_timeout=0.05, retry_delay=0.05, max_retry_delay=0.1)
    for n in range(1, 4):
        store.save_task(done(n))
    store.flush()
    with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")  # another program holds the file
        with pytest.raises(StoreError, match="could not purge"):
            store.purge_finished(T0 + timedelta(hours=1))
        other.execute("COMMIT")
    store.save_task(done(4))
    store.flush()  # the writer has tried everything queued: nothing was purged, then or later
    assert store.count_tasks() == 4
    assert sql(db, "PRAGMA integrity_check") == [("ok",)]

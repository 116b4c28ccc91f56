"""Tests of what the store lets go: trimmed events, Django Q's save_limit, deleted groups and
tasks."""

from __future__ import annotations

from taskcast.records import TaskStatus
from taskcast.store.store import Store
from tests.store.conftest import MakeStore, done, task


def test_trim_events_keeps_the_head_and_the_tail(store: Store) -> None:
    for seq in range(1, 11):
        store.append_event("run", seq, "{}")
    store.trim_events("run", keep_head=2, keep_tail=3)
    store.append_event("run", 11, "{}")
    assert [seq for seq, _ in store.events("run")] == [1, 2, 8, 9, 10, 11]


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

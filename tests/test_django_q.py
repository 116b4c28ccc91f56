"""`taskcast.tasks` behaves as Django Q's `django_q.tasks`: each test pins one call or option as
django-q2 (`tasks.py`, `models.py`, `worker.py`, `monitor.py`) does it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from taskcast import tasks
from taskcast.errors import TaskSpecError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.spec import forget_warnings
from tests.support.eventually import eventually
from tests.support.sample_tasks import HOLDS

T = "tests.support.sample_tasks."
HERE = "tests.test_django_q."

#: the records the hooks of these tests were called with
HOOKED: list[TaskRecord] = []


async def echo(*args: Any, **kwargs: Any) -> list[Any]:
    """Returns what it was called with, to see which keywords reached the function."""
    return [list(args), kwargs]


def note_hook(task: TaskRecord) -> None:
    HOOKED.append(task)


async def finished(*task_ids: str) -> list[TaskRecord]:
    return [await tasks.wait_task(task_id, timeout=10) for task_id in task_ids]


# -- fetch, result ------------------------------------------------------------------------------


async def test_fetch_is_none_until_the_task_has_finished(runner: Runner) -> None:
    HOLDS["fetch"] = asyncio.Event()
    task_id = tasks.async_task(T + "hold", "fetch")
    await eventually(lambda: tasks.get_task(task_id).status is TaskStatus.RUNNING)  # type: ignore[union-attr]
    assert tasks.fetch(task_id) is None
    HOLDS["fetch"].set()
    await finished(task_id)
    record = tasks.fetch(task_id)
    assert record is not None and record.success and record.result == "fetch"


async def test_fetch_waits_with_wait_in_milliseconds(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_sleep_for", 0.2)
    record = await asyncio.to_thread(tasks.fetch, task_id, wait=5000)
    assert record is not None and record.id == task_id and record.result == "slept"
    assert await asyncio.to_thread(tasks.fetch, "f" * 32, wait=30) is None


async def test_get_task_shows_a_queued_or_running_task(runner: Runner) -> None:
    HOLDS["live"] = asyncio.Event()
    task_id = tasks.async_task(T + "hold", "live", task_name="live-one")
    await eventually(lambda: getattr(tasks.get_task("live-one"), "status", None) == "running")
    HOLDS["live"].set()
    await finished(task_id)
    assert tasks.get_task(task_id).status is TaskStatus.SUCCESS  # type: ignore[union-attr]


async def test_result_of_a_failed_task_is_django_q_error_text(runner: Runner) -> None:
    (record,) = await finished(tasks.async_task(T + "async_fail", "nope"))
    text = tasks.result(record.id)
    assert isinstance(text, str) and text.startswith("nope : Traceback (most recent call last)")
    assert text.rstrip().endswith("ValueError: nope")
    assert record.result == text and record.success is False


async def test_result_of_an_unknown_task_with_wait_is_none(runner: Runner) -> None:
    assert await asyncio.to_thread(tasks.result, "0" * 32, wait=50) is None
    assert await asyncio.to_thread(tasks.result, "no such name", 20) is None


async def test_result_waits_for_a_task_that_fails(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_fail", "later", q_options={"timeout": 5})
    text = await asyncio.to_thread(tasks.result, task_id, 5000)
    assert isinstance(text, str) and text.startswith("later : ")


# -- the record is Django Q's Task --------------------------------------------------------------


async def test_time_taken_is_a_method(runner: Runner) -> None:
    (record,) = await finished(tasks.async_task(T + "async_sleep_for", 0.05))
    taken = record.time_taken()
    assert taken is not None and taken >= 0.05
    assert str(record) == record.name


async def test_record_fields_mean_what_django_q_task_fields_mean(runner: Runner) -> None:
    task_id = tasks.async_task(
        HERE + "echo", 1, "two", key="v", hook=HERE + "note_hook", group="fields", task_name="f1"
    )
    (record,) = await finished(task_id)
    stored = tasks.fetch("f1")
    assert stored is not None
    for task in (record, stored):
        assert task.id == task_id and task.name == "f1"
        assert task.func == HERE + "echo" and task.hook == HERE + "note_hook"
        assert task.args == (1, "two") and task.kwargs == {"key": "v"}
        assert task.result == [[1, "two"], {"key": "v"}] and task.group == "fields"
        assert task.started is not None and task.stopped is not None
        assert task.started <= task.stopped
        assert task.success is True and task.attempt_count == 1


async def test_a_callable_hook_is_recorded_by_its_dotted_path(runner: Runner) -> None:
    (record,) = await finished(tasks.async_task(T + "async_identity", 1, hook=note_hook))
    assert record.hook == HERE + "note_hook"
    assert tasks.fetch(record.id).hook == HERE + "note_hook"  # type: ignore[union-attr]


# -- counting and deleting groups ---------------------------------------------------------------


async def test_count_group_counts_every_finished_task_and_timeouts_as_failures(
    runner: Runner,
) -> None:
    ok = [tasks.async_task(T + "async_identity", n, group="count") for n in range(3)]
    failed = tasks.async_task(T + "async_fail", group="count")
    late = tasks.async_task(T + "async_sleep_for", 5, group="count", timeout=0.1)
    await finished(*ok, failed, late)
    HOLDS["count"] = asyncio.Event()
    running = tasks.async_task(T + "hold", "count", group="count")
    await eventually(lambda: tasks.get_task(running).status is TaskStatus.RUNNING)  # type: ignore[union-attr]
    assert tasks.count_group("count") == 5
    assert tasks.count_group("count", failures=True) == 2
    HOLDS["count"].set()
    await finished(running)
    assert tasks.count_group("count") == 6


async def test_delete_group_clears_the_label_and_keeps_the_tasks(runner: Runner) -> None:
    ids = [tasks.async_task(T + "async_identity", n, group="label") for n in range(2)]
    await finished(*ids)
    assert tasks.delete_group("label") == 2
    assert tasks.count_group("label") == 0
    for task_id in ids:
        record = tasks.fetch(task_id)
        assert record is not None and record.group is None and record.success


async def test_delete_group_with_tasks_deletes_them(runner: Runner) -> None:
    ids = [tasks.async_task(T + "async_identity", n, group="gone") for n in range(2)]
    kept = tasks.async_task(T + "async_identity", "other", group="kept")
    await finished(*ids, kept)
    assert tasks.delete_group("gone", tasks=True) == 2
    assert [tasks.fetch(task_id) for task_id in ids] == [None, None]
    assert tasks.fetch(kept) is not None


# -- options ------------------------------------------------------------------------------------


async def test_save_false_keeps_only_failures(runner: Runner) -> None:
    ok, failed = await finished(
        tasks.async_task(T + "async_identity", 1, save=False, group="unsaved"),
        tasks.async_task(T + "async_fail", "kept", save=False, group="unsaved"),
    )
    assert ok.success and tasks.fetch(ok.id) is None
    stored = tasks.fetch(failed.id)
    assert stored is not None and not stored.success
    assert tasks.count_group("unsaved") == 1


async def test_hook_gets_the_finished_task_and_follows_its_save(runner: Runner) -> None:
    HOOKED.clear()
    saved = tasks.async_task(T + "async_identity", "h1", hook=HERE + "note_hook")
    failed = tasks.async_task(T + "async_fail", "h2", hook=note_hook, save=False)
    unsaved = tasks.async_task(T + "async_identity", "h3", hook=note_hook, save=False)
    await finished(unsaved, saved, failed)  # the unsaved one first, while it can be found
    await eventually(lambda: len(HOOKED) >= 2, what="two hooks called")
    await runner.close()  # waits for every hook still running
    by_id = {task.id: task for task in HOOKED}
    assert set(by_id) == {saved, failed}  # as in Django Q, the hook runs when the task is saved
    assert by_id[saved].result == "h1" and by_id[saved].success
    assert str(by_id[failed].result).startswith("h2 : ")


async def test_q_options_win_only_for_the_options_they_name(runner: Runner) -> None:
    options = {"group": "from-options", "task_name": "from-options"}
    task_id = tasks.async_task(
        HERE + "echo",
        group="for-the-function",
        task_name="keyword-name",
        hook=HERE + "note_hook",
        q_options=options,
    )
    (record,) = await finished(task_id)
    assert record.group == "from-options"
    assert record.name == "keyword-name"  # Django Q takes task_name from the keywords first
    assert record.hook == HERE + "note_hook"  # not named in q_options: still an option
    assert record.result == [[], {"group": "for-the-function"}]
    assert options == {"group": "from-options", "task_name": "from-options"}  # not changed


async def test_task_name_finds_the_task(runner: Runner) -> None:
    await finished(tasks.async_task(T + "async_identity", 7, task_name="seven"))
    assert tasks.result("seven") == 7 and tasks.fetch("seven").name == "seven"  # type: ignore[union-attr]


async def test_infrastructure_options_are_accepted_with_one_warning_each(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    forget_warnings()
    with caplog.at_level(logging.WARNING, logger="taskcast.spec"):
        for n in range(2):
            task_id = tasks.async_task(
                T + "async_identity", n, broker=object(), cluster="east", ack_failure=True
            )
            assert await tasks.wait_result(task_id, timeout=5) == n
    warned = [r.getMessage() for r in caplog.records if r.name == "taskcast.spec"]
    assert len(warned) == 3
    for option in ("broker", "cluster", "ack_failure"):
        assert sum(f"'{option}'" in message for message in warned) == 1


async def test_cached_gives_what_the_caller_would_see(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_identity", "c", cached=True, group="cached")
    await finished(task_id)
    assert tasks.result(task_id, cached=True) == "c"
    assert tasks.fetch(task_id, cached=60).result == "c"  # type: ignore[union-attr]
    assert tasks.result_group("cached", cached=True) == ["c"]
    assert tasks.count_group("cached", cached=True) == 1


async def test_iter_options_are_refused_with_what_to_use(runner: Runner) -> None:
    with pytest.raises(TaskSpecError, match="async_iter"):
        tasks.async_task(T + "async_identity", 1, iter_count=3)


# -- groups: order, count, failures -------------------------------------------------------------


async def _one_by_one(group: str, values: list[Any]) -> list[str]:
    """Run the tasks one after the other, so they stop in this order."""
    ids = []
    for value in values:
        func = "async_fail" if value == "fail" else "async_identity"
        ids.append(tasks.async_task(T + func, value, group=group))
        await finished(ids[-1])
    return ids


async def test_result_group_is_newest_finished_first(runner: Runner) -> None:
    await _one_by_one("order", ["a", "fail", "b", "c"])
    assert tasks.result_group("order") == ["c", "b", "a"]
    with_failures = tasks.result_group("order", failures=True)
    assert with_failures is not None and len(with_failures) == 4
    assert with_failures[:2] == ["c", "b"] and str(with_failures[2]).startswith("fail : ")
    assert tasks.result_group("empty-group") is None


async def test_fetch_group_count_waits_and_does_not_cut_the_list(runner: Runner) -> None:
    ids = await _one_by_one("counted", ["a", "fail", "b"])
    records = tasks.fetch_group("counted", count=2)
    assert records is not None and [r.id for r in records] == ids[::-1]
    assert [r.id for r in tasks.fetch_group("counted", failures=False) or []] == [ids[2], ids[0]]
    assert tasks.fetch_group("empty-group") is None


async def test_result_group_count_blocks_until_that_many_have_finished(runner: Runner) -> None:
    ids = [tasks.async_task(T + "async_sleep_for", 0.05 * n, group="wait-for") for n in range(3)]
    results = await asyncio.to_thread(tasks.result_group, "wait-for", count=3, wait=10_000)
    assert results == ["slept"] * 3
    await finished(*ids)
    early = await asyncio.to_thread(tasks.result_group, "never", count=1, wait=30)
    assert early is None

"""`taskcast.tasks`, Django Q's calls: ids, results, waiting, fetch, groups, sync mode, no server."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from taskcast import tasks
from taskcast.errors import NoRunnerError, TaskcastError, TaskSpecError, UnknownTaskError
from taskcast.records import TaskStatus
from taskcast.runtime.runner import Runner
from tests.support.eventually import eventually

T = "tests.support.sample_tasks."


async def test_async_task_returns_a_32_hex_id_at_once(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_sleep_for", 0.2)
    assert len(task_id) == 32 and all(c in "0123456789abcdef" for c in task_id)
    record = tasks.get_task(task_id)
    assert record is not None and record.status in (TaskStatus.QUEUED, TaskStatus.RUNNING)
    assert tasks.fetch(task_id) is None and tasks.result(task_id) is None
    assert await tasks.wait_result(task_id, timeout=5) == "slept"
    assert tasks.result(task_id) == "slept"


async def test_keywords_reach_the_function_and_options_do_not(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_identity", value={"x": 1}, group="g1", task_name="nice")
    assert await tasks.wait_result(task_id, timeout=5) == {"x": 1}
    record = tasks.fetch("nice")
    assert record is not None and record.id == task_id and record.group == "g1"


async def test_q_options_lets_keywords_named_like_options_through(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_identity", value="v", q_options={"task_name": "opt"})
    assert await tasks.wait_result(task_id, timeout=5) == "v"
    task_id = tasks.async_task(T + "identity", q_options={"group": "qg"}, value="group-kw")
    assert await tasks.wait_result(task_id, timeout=5) == "group-kw"
    assert tasks.fetch(task_id).group == "qg"  # type: ignore[union-attr]


async def test_result_with_wait_refuses_on_the_loop(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_identity", 1)
    with pytest.raises(TaskcastError, match="wait_result"):
        tasks.result(task_id, wait=100)
    await tasks.wait_result(task_id, timeout=5)


async def test_result_waits_from_another_thread(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_sleep_for", 0.2)
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(tasks.result(task_id, wait=5000)))
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join)
    assert got == ["slept"]


async def test_result_wait_times_out_with_none(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_sleep_for", 5)

    def short_wait() -> Any:
        return tasks.result(task_id, wait=50)

    assert await asyncio.get_running_loop().run_in_executor(None, short_wait) is None
    tasks.cancel(task_id)


async def test_wait_result_timeout_and_unknown(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_sleep_for", 5)
    with pytest.raises(TimeoutError):
        await tasks.wait_result(task_id, timeout=0.05)
    with pytest.raises(UnknownTaskError):
        await tasks.wait_result("f" * 32, timeout=0.05)
    assert tasks.cancel(task_id) is True
    record = await tasks.wait_task(task_id, timeout=5)
    assert record.status is TaskStatus.CANCELLED
    assert tasks.cancel(task_id) is False


async def test_falsy_results_returned_as_they_are(runner: Runner) -> None:
    values: list[Any] = [0, False, []]
    for value in values:
        task_id = tasks.async_task(T + "async_identity", value)
        assert await tasks.wait_result(task_id, timeout=5) == value
        assert tasks.result(task_id) == value and type(tasks.result(task_id)) is type(value)


async def test_failed_task_has_its_error_as_result(runner: Runner) -> None:
    task_id = tasks.async_task(T + "async_fail", "nope")
    assert str(await tasks.wait_result(task_id, timeout=5)).startswith("nope : Traceback")
    record = tasks.fetch(task_id)
    assert record is not None and record.status is TaskStatus.FAILED
    assert record.error is not None and "ValueError: nope" in record.error


async def test_bad_calls_fail_at_async_task_time(runner: Runner) -> None:
    with pytest.raises(TaskSpecError, match="no_such_module"):
        tasks.async_task("no_such_module.fn")
    with pytest.raises(TaskSpecError, match="has no function"):
        tasks.async_task(T + "missing")
    with pytest.raises(TaskSpecError, match="not a function"):
        tasks.async_task("tests.test_tasks.T")  # a str constant, not callable
    with pytest.raises(TaskSpecError, match="pickle"):
        tasks.async_task(T + "identity", threading.Lock())
    assert tasks.queue_size() == 0


async def test_groups(runner: Runner) -> None:
    ids = [tasks.async_task(T + "async_identity", n, group="sums") for n in range(3)]
    failing = tasks.async_task(T + "async_fail", group="sums")
    for task_id in [*ids, failing]:
        await tasks.wait_task(task_id, timeout=5)
    assert tasks.count_group("sums") == 4
    assert tasks.count_group("sums", failures=True) == 1
    assert sorted(tasks.result_group("sums") or []) == [0, 1, 2]
    assert len(tasks.fetch_group("sums") or []) == 4
    assert len(tasks.fetch_group("sums", failures=False) or []) == 3
    assert tasks.result_group("nothing-here") is None
    assert tasks.delete_group("sums", tasks=True) == 4
    assert tasks.count_group("sums") == 0


async def test_queue_size_counts_waiting_tasks(runner: Runner) -> None:
    ids = [tasks.async_task(T + "sleep_for", 0.3) for _ in range(4)]  # 2 workers
    assert tasks.queue_size() == 4  # queued, the starts come in the next turn of the loop
    await eventually(lambda: tasks.queue_size() == 2, 5, "two started, two wait for a worker")
    for task_id in ids:
        await tasks.wait_task(task_id, timeout=10)
    assert tasks.queue_size() == 0


async def test_async_task_from_a_thread_task_and_a_plain_thread(runner: Runner) -> None:
    def from_thread() -> str:
        return tasks.async_task(T + "add", 4, 5)

    task_id = await asyncio.get_running_loop().run_in_executor(None, from_thread)
    assert await tasks.wait_result(task_id, timeout=10) == 9


async def test_sync_from_a_thread_runs_on_the_server_and_reraises(runner: Runner) -> None:
    def sync_call(func: str, *args: Any) -> str:
        return tasks.async_task(T + func, *args, sync=True)

    loop = asyncio.get_running_loop()
    task_id = await loop.run_in_executor(None, sync_call, "add", 1, 2)
    assert tasks.result(task_id) == 3
    with pytest.raises(ValueError, match="boom"):
        await loop.run_in_executor(None, sync_call, "async_fail")


async def test_sync_on_the_loop_runs_inline(runner: Runner) -> None:
    task_id = tasks.async_task(T + "add", 2, 2, sync=True)
    assert tasks.result(task_id) == 4
    with pytest.raises(ValueError, match="inline"):
        tasks.async_task(T + "fail", "inline", sync=True)
    with pytest.raises(TaskcastError, match="async task"):
        tasks.async_task(T + "async_identity", 1, sync=True)


def test_without_a_server_async_task_says_what_to_do() -> None:
    with pytest.raises(NoRunnerError, match=r"python run.py.*sync=True"):
        tasks.async_task(T + "add", 1, 2)
    with pytest.raises(NoRunnerError):
        tasks.result("0" * 32)


def test_sync_without_a_server_runs_here_and_keeps_the_result() -> None:
    task_id = tasks.async_task(T + "add", 1, 2, sync=True)
    assert tasks.result(task_id) == 3
    record = tasks.fetch(task_id)
    assert record is not None and record.status is TaskStatus.SUCCESS
    async_id = tasks.async_task(T + "async_identity", "a", sync=True)
    assert tasks.result(async_id) == "a"
    with pytest.raises(ValueError, match="offline"):
        tasks.async_task(T + "fail", "offline", sync=True)

"""Django Q's `async_chain`/`Chain` and `async_iter`/`Iter` from `taskcast.tasks`."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from taskcast import tasks
from taskcast.errors import TaskSpecError
from taskcast.runtime.runner import Runner
from taskcast.store.rows import NEVER
from tests.support.eventually import eventually

T = "tests.support.sample_tasks."


async def test_async_chain_runs_each_call_after_the_one_before(runner: Runner) -> None:
    chain: list[Any] = [
        (T + "async_sleep_for", (0.05,)),
        (T + "async_fail", ("middle",)),
        (T + "async_identity", (), {"value": "last"}),
    ]
    group = tasks.async_chain(chain)
    assert len(chain) == 3  # the caller's list is left as it was
    results = await asyncio.to_thread(tasks.result_group, group, True, 10_000, 3)
    assert results is not None and results[0] == "last" and results[2] == "slept"
    assert str(results[1]).startswith("middle : ")  # a failure does not stop the chain
    records = tasks.fetch_group(group) or []
    assert len(records) == 3
    ordered = sorted(records, key=lambda record: record.enqueued or NEVER)
    for before, after in itertools.pairwise(ordered):
        assert before.stopped is not None and after.enqueued is not None
        assert before.stopped <= after.enqueued


async def test_chain_class_appends_runs_and_reports(runner: Runner) -> None:
    chain = tasks.Chain()
    assert chain.append(T + "async_identity", 1) == 1
    assert chain.append(T + "async_identity", value=2) == 2
    assert chain.current() is None and chain.result() is None
    group = chain.run()
    assert group and chain.started
    results = await asyncio.to_thread(chain.result, 10_000)
    assert results == [2, 1]
    assert chain.current() == 2
    assert [record.result for record in chain.fetch() or []] == [2, 1]


async def test_the_chain_option_of_async_task_queues_the_rest(runner: Runner) -> None:
    first = tasks.async_task(
        T + "async_identity", "a", group="opt-chain", chain=[(T + "async_identity", ("b",))]
    )
    await eventually(lambda: tasks.count_group("opt-chain") == 2, what="both calls ended")
    assert tasks.result(first) == "a" and tasks.result_group("opt-chain") == ["b", "a"]


async def test_a_synchronous_chain_runs_to_its_end_at_once(runner: Runner) -> None:
    group = tasks.async_chain([(T + "add", (1, 2)), (T + "add", (3, 4))], sync=True)
    assert sorted(tasks.result_group(group) or []) == [3, 7]


async def test_a_bad_chain_is_refused_before_anything_runs(runner: Runner) -> None:
    with pytest.raises(TaskSpecError, match="no_such_module"):
        tasks.async_chain([(T + "async_identity", (1,)), ("no_such_module.f",)])
    with pytest.raises(TaskSpecError, match="at least one"):
        tasks.async_chain([])
    assert tasks.queue_size() == 0


async def test_async_iter_gives_every_result_under_one_id(runner: Runner) -> None:
    iter_id = tasks.async_iter(T + "add", [(1, 2), (3, 4), (5, 6)])
    assert tasks.fetch(iter_id) is None
    results = await asyncio.to_thread(tasks.result, iter_id, 10_000)
    assert sorted(results) == [3, 7, 11]
    record = tasks.fetch(iter_id)
    assert record is not None and record.success and record.args == ((1, 2), (3, 4), (5, 6))
    assert tasks.count_group(iter_id) == 3  # its calls, in its group


async def test_iter_class_runs_appended_arguments(runner: Runner) -> None:
    it = tasks.Iter(T + "async_identity")
    assert it.append("x") == 1 and it.append("y") == 2
    assert it.result() is None
    it.run()
    results = await asyncio.to_thread(it.result, 10_000)
    assert sorted(results) == ["x", "y"]
    fetched = it.fetch()
    assert fetched is not None and fetched.id == it.id


async def test_a_failing_call_of_an_iterable_is_in_its_results(runner: Runner) -> None:
    iter_id = tasks.async_iter(T + "async_fail", ["one"])
    results = await asyncio.to_thread(tasks.result, iter_id, 10_000)
    assert len(results) == 1 and results[0].startswith("one : ")
    assert tasks.fetch(iter_id).success is False  # type: ignore[union-attr]

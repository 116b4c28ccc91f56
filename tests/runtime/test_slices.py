"""Mass starts and ends: the runner's deferred work in slices keeps every record, in order, and
lets the rest of the loop run in between (no timing is asserted, only what users rely on)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import defaultdict

from taskcast.errors import StreamBusyError
from taskcast.hub.hub import Item, StreamEnd, StreamEvent
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.runner import BUSY_TURN_SECONDS, ENDS_WHEN_BUSY, Runner
from taskcast.spec import build_spec
from tests.conftest import RunnerFactory
from tests.support import sample_tasks
from tests.support.eventually import eventually

T = "tests.support.sample_tasks."
MANY = 10_000


async def test_ten_thousand_starts_in_one_turn_are_all_recorded_in_order_and_run(
    make_runner: RunnerFactory,
) -> None:
    runner = await make_runner(save_limit=0)  # the store keeps every success
    changes: dict[str, list[TaskStatus]] = defaultdict(list)
    announced: list[str] = []

    def listen(record: TaskRecord) -> None:
        changes[record.id].append(record.status)
        if record.status is TaskStatus.QUEUED:
            announced.append(record.id)

    runner.add_listener(listen)
    spec = build_spec(T + "async_identity", (1,), {})
    ids = [runner.submit(spec) for _ in range(MANY)]  # one turn of the loop
    assert len(set(ids)) == MANY and all(uuid.UUID(i).version == 4 for i in ids)
    # Seen at once, as queued, before any of the work left for later turns.
    assert all(getattr(runner.get(i), "status", None) is TaskStatus.QUEUED for i in ids)
    assert runner.queue_size == MANY and not changes
    # The loop gets turns between the slices: some runs announced, others not yet.
    between = 0

    def tick() -> None:
        nonlocal between
        between += 0 < len(announced) < MANY
        if len(announced) < MANY:
            asyncio.get_running_loop().call_soon(tick)

    asyncio.get_running_loop().call_soon(tick)
    records = [await runner.wait(i, 60) for i in ids]
    assert between > 0, "the deferred work was done in one turn"
    assert all(r.status is TaskStatus.SUCCESS and r.result == 1 for r in records)
    # Announced in the order they were submitted, and each one's records in the order they
    # changed; started first in, first out.
    assert announced == ids
    assert all(
        changes[i] == [TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCESS] for i in ids
    )
    started = [r.started for r in records]
    assert started == sorted(started)  # type: ignore[type-var]
    await runner.store.aflush()
    assert runner.store.count_tasks() == MANY
    stored = runner.store.get_task(ids[-1])
    assert stored is not None and stored.status is TaskStatus.SUCCESS


async def held_streams(runner: Runner, count: int, key: str, prefix: str) -> list[str]:
    """`count` tasks, each with its stream `aio__<prefix><n>`, running and held until
    `sample_tasks.HOLDS[key]` is set (the caller makes that event first)."""
    ids = [
        runner.submit(
            build_spec(T + "held_stream", (), {"task_publish_id": f"{prefix}{n}", "key": key})
        )
        for n in range(count)
    ]
    await eventually(
        lambda: all(getattr(runner.get(i), "status", None) is TaskStatus.RUNNING for i in ids),
        30,
        "every task is running",
    )
    return ids


async def test_two_thousand_streams_ending_together_keep_every_record_and_every_stop(
    runner: Runner,
) -> None:
    count = 2_000
    key = "mass-end"
    sample_tasks.HOLDS[key] = asyncio.Event()
    try:
        subscriptions = [runner.hub.subscribe(f"aio__m{n}") for n in range(count)]
        ids = await held_streams(runner, count, key, "m")
        between = 0

        def tick() -> None:
            # Some ends recorded, others not yet: the loop got a turn between two slices.
            nonlocal between
            between += 0 < runner.running_count < count
            if runner.running_count:
                asyncio.get_running_loop().call_soon(tick)

        sample_tasks.HOLDS[key].set()  # every task ends in the same turn of the loop
        asyncio.get_running_loop().call_soon(tick)
        for task_id in ids:
            record = await runner.wait(task_id, 60)
            assert record.status is TaskStatus.SUCCESS and record.result == key
        assert between > 0, "the ends were recorded in one turn"
        for subscription in subscriptions:
            items: list[Item] = []
            while not items or not isinstance(items[-1], StreamEnd):
                items.extend(await asyncio.wait_for(subscription.next_batch(), 10))
            data = [item.data for item in items if isinstance(item, StreamEvent)]
            assert data == ["<li>first</li>===>>.data", "<li>last</li>===>>.data"]
            assert items[-1].state == "success"
        assert runner.running_count == 0
    finally:
        del sample_tasks.HOLDS[key]


async def test_after_a_long_turn_ended_runs_are_finished_one_a_turn(runner: Runner) -> None:
    """When ends were left waiting and the turn since took BUSY_TURN_SECONDS or more, the next
    slice finishes ENDS_WHEN_BUSY of them: their stop frames and close handshakes come in the
    turns after, and live streams must not wait behind thousands of them."""
    count = 40
    key = "busy-turns"
    sample_tasks.HOLDS[key] = asyncio.Event()
    try:
        ids = await held_streams(runner, count, key, "b")
        running: list[int] = []

        def busy_turn() -> None:
            # Live work elsewhere makes every turn longer than BUSY_TURN_SECONDS.
            running.append(runner.running_count)
            time.sleep(BUSY_TURN_SECONDS * 2)
            if runner.running_count:
                asyncio.get_running_loop().call_soon(busy_turn)

        sample_tasks.HOLDS[key].set()  # every task ends in the same turn of the loop
        asyncio.get_running_loop().call_soon(busy_turn)
        records = [await runner.wait(task_id, 60) for task_id in ids]
        assert all(record.status is TaskStatus.SUCCESS for record in records)
        finished = [a - b for a, b in itertools.pairwise(running) if a != b]
        # The first slice came after a turn that left nothing waiting; each one after, one end.
        assert len(finished) > 1 and max(finished[1:]) <= ENDS_WHEN_BUSY, finished
    finally:
        del sample_tasks.HOLDS[key]


async def test_a_busy_stream_is_refused_in_the_same_turn(runner: Runner) -> None:
    spec = build_spec(T + "async_events", (), {"task_publish_id": "same-turn", "count": 1})
    first = runner.submit(spec)
    try:
        runner.submit(spec)
    except StreamBusyError as refused:
        assert refused.task_id == first
    else:
        raise AssertionError("a second run of a busy stream was accepted")
    assert (await runner.wait(first, 10)).status is TaskStatus.SUCCESS


async def test_a_task_cancelled_in_the_turn_it_was_submitted_never_runs(
    runner: Runner,
) -> None:
    sample_tasks.NOTED.pop("never", None)
    task_id = runner.submit(build_spec(T + "note_run", ("never",), {}))
    assert runner.cancel(task_id) is True
    record = await runner.wait(task_id, 5)
    assert record.status is TaskStatus.CANCELLED and record.started is None
    assert runner.queue_size == 0
    await asyncio.sleep(0.05)  # a few turns: nothing left over may start it
    assert "never" not in sample_tasks.NOTED
    stored = runner.store.get_task(task_id)
    assert stored is not None and stored.status is TaskStatus.CANCELLED


async def test_a_task_cancelled_after_its_start_but_before_its_first_step_still_ends(
    runner: Runner,
) -> None:
    """Its coroutine never runs, so its end comes from the asyncio task's end instead."""
    sample_tasks.NOTED.pop("never", None)
    task_id = runner.submit(build_spec(T + "note_run", ("never",), {}))
    # Called in the turn after the submit, after the runner's slice has started the run, and
    # before the run's asyncio task takes its first step (the turn after).
    asyncio.get_running_loop().call_soon(runner.cancel, task_id)
    record = await runner.wait(task_id, 5)
    assert record.status is TaskStatus.CANCELLED and record.started is not None
    assert record.result == "cancelled"
    assert "never" not in sample_tasks.NOTED
    assert runner.running_count == 0


async def test_tasks_submitted_just_before_the_runner_closes_end_cancelled(
    make_runner: RunnerFactory,
) -> None:
    runner = await make_runner()
    ids = [runner.submit(build_spec(T + "async_identity", (n,), {})) for n in range(50)]
    await runner.close(grace=0)
    records = [await runner.wait(i, 5) for i in ids]
    # Started in the turn before the close, or not at all: stopped either way, never left
    # waiting (a run stopped before its first step still ends).
    assert {r.status for r in records} == {TaskStatus.CANCELLED}
    assert all(r.result is None or r.result.startswith("cancelled") for r in records)


async def test_a_kind_at_its_limit_waits_and_the_others_run(make_runner: RunnerFactory) -> None:
    runner = await make_runner(max_async_tasks=2)
    key = "limit"
    sample_tasks.HOLDS[key] = asyncio.Event()
    try:
        held = [runner.submit(build_spec(T + "hold", (key,), {})) for _ in range(3)]
        process = runner.submit(build_spec(T + "add", (2, 3), {}))
        assert (await runner.wait(process, 30)).result == 5  # a process task is not held
        limits = runner.limits()
        assert limits["async"].as_json() == {
            "limit": 2, "running": 2, "waiting": 1, "held": True
        }  # fmt: skip
        assert limits["process"].limit == runner.settings.process_workers
        assert runner.get(held[2]).status is TaskStatus.QUEUED  # type: ignore[union-attr]
        sample_tasks.HOLDS[key].set()
        records = [await runner.wait(i, 10) for i in held]
        assert all(record.status is TaskStatus.SUCCESS for record in records)
        await eventually(lambda: not runner.limits()["async"].held, 5, "the wait is over")
    finally:
        del sample_tasks.HOLDS[key]

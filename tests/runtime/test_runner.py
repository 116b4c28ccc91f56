"""The runner without HTTP: kinds, events, limits, cancel, timeout, crashes, hooks, retries."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from taskcast.errors import StoreError, StreamBusyError, UnknownTaskError
from taskcast.hub.hub import (
    Hub,
    Item,
    Start,
    StreamEnd,
    StreamEvent,
    SubscriberTooSlow,
    Subscription,
    hub_options,
)
from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.runner import Runner, utcnow
from taskcast.settings import Settings
from taskcast.spec import build_spec
from tests.conftest import RunnerFactory
from tests.support.eventually import eventually

T = "tests.support.sample_tasks."


def start(runner: Runner, func: str, *args: Any, **kwargs: Any) -> str:
    return runner.submit(build_spec(T + func, args, kwargs))


async def finished(runner: Runner, task_id: str, timeout: float = 15) -> TaskRecord:
    return await runner.wait(task_id, timeout)


async def collect(subscription: Subscription, timeout: float = 15) -> list[Item]:
    """Every item of a subscription up to and including its end."""
    items: list[Item] = []
    async with asyncio.timeout(timeout):
        while True:
            batch = await subscription.next_batch()
            if not batch:
                return items
            items.extend(batch)
            if isinstance(batch[-1], StreamEnd):
                return items


def data_of(items: list[Item]) -> list[Any]:
    return [item.data for item in items if isinstance(item, StreamEvent)]


async def test_async_task_result_and_record(runner: Runner) -> None:
    task_id = start(runner, "async_identity", {"a": [1, 2]})
    assert len(task_id) == 32 and int(task_id, 16) >= 0 and task_id == task_id.lower()
    record = await finished(runner, task_id)
    assert record.status is TaskStatus.SUCCESS
    assert record.result == {"a": [1, 2]}
    assert record.func == T + "async_identity"
    assert record.args == ({"a": [1, 2]},)
    assert record.kind == "async" and record.attempt_count == 1
    assert record.enqueued and record.started and record.stopped
    assert record.enqueued <= record.started <= record.stopped
    taken = record.time_taken()
    assert taken is not None and taken >= 0
    assert len(record.name.split("-")) == 4


async def test_process_task_result(runner: Runner) -> None:
    record = await finished(runner, start(runner, "add", 2, 3))
    assert (record.status, record.result, record.kind) == (TaskStatus.SUCCESS, 5, "process")


async def test_thread_task_result(runner: Runner) -> None:
    record = await finished(runner, start(runner, "thread_sleep_for", 0.01))
    assert (record.status, record.result, record.kind) == (TaskStatus.SUCCESS, "slept", "thread")


async def test_falsy_results_are_kept(runner: Runner) -> None:
    values: list[Any] = [0, False, [], "", None]
    for value in values:
        record = await finished(runner, start(runner, "identity", value))
        assert record.status is TaskStatus.SUCCESS
        assert record.result == value and type(record.result) is type(value)


@pytest.mark.parametrize("func", ["process_events", "async_events", "thread_events"])
async def test_events_of_every_kind_reach_subscribers_in_order(runner: Runner, func: str) -> None:
    group = {"process_events": "proc", "async_events": "aio", "thread_events": "thr"}[func]
    early = runner.hub.subscribe(f"{group}__x")
    task_id = start(runner, func, task_publish_id="x", count=50)
    items = await collect(early)
    assert isinstance(items[0], Start) and isinstance(items[-1], StreamEnd)
    assert data_of(items) == [f"<li>{i}</li>===>>.data" for i in range(50)]
    assert [item.seq for item in items if isinstance(item, StreamEvent)] == list(range(1, 51))
    assert items[-1].state == "success"
    record = await finished(runner, task_id)
    assert record.stream_id == f"{group}__x" and record.result == 50


@pytest.mark.parametrize("func", ["process_events", "async_events", "thread_events"])
async def test_every_event_is_in_the_store_once_the_task_has_ended(
    runner: Runner, func: str
) -> None:
    task_id = start(runner, func, task_publish_id="stored", count=300)
    await finished(runner, task_id)
    events = runner.store.events(task_id)
    assert events == [(seq, f'"<li>{seq - 1}</li>===>>.data"') for seq in range(1, 301)]


async def test_a_task_that_sends_without_yielding_hands_its_events_over_as_it_sends_them(
    runner: Runner,
) -> None:
    """The store's writer is the one stage that batches: each event goes to it as it is
    published, not all at the end, even when the task never yields to the loop."""
    handed: list[tuple[int, int]] = []
    append_events = runner.store.append_events

    def counting(run_id: str, first_seq: int, events: list[str]) -> None:
        handed.append((first_seq, len(events)))
        append_events(run_id, first_seq, events)

    runner.store.append_events = counting  # type: ignore[method-assign]
    task_id = start(runner, "async_burst", task_publish_id="burst", count=2500)
    await finished(runner, task_id)
    assert handed == [(seq, 1) for seq in range(1, 2501)]
    assert len(runner.store.events(task_id)) == 2500


async def test_events_the_store_refuses_are_logged_and_the_task_and_its_readers_go_on(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(run_id: str, first_seq: int, events: list[str]) -> None:
        raise StoreError("store is closed")

    runner.store.append_events = refuse  # type: ignore[method-assign]
    subscription = runner.hub.subscribe("aio__refused")
    task_id = start(runner, "async_events", task_publish_id="refused", count=5)
    record = await finished(runner, task_id)
    assert record.status is TaskStatus.SUCCESS and record.result == 5
    assert len(data_of(await collect(subscription))) == 5  # still streamed live
    assert f"task {task_id}: 5 events were not stored: store is closed" in caplog.text


async def test_a_running_tasks_events_reach_the_store_while_it_runs(
    runner: Runner, tmp_path: Path
) -> None:
    flag = tmp_path / "release"
    task_id = start(runner, "event_then_wait", task_publish_id="saved", flag=str(flag))
    for _ in range(100):  # handed over at once, committed within the store's linger
        if runner.store.events(task_id):
            break
        await asyncio.sleep(0.02)
    assert runner.store.events(task_id) == [(1, '"first"')]
    assert runner.get(task_id).status is TaskStatus.RUNNING  # type: ignore[union-attr]
    flag.touch()
    await finished(runner, task_id)


async def test_process_events_arrive_while_the_task_runs(runner: Runner, tmp_path: Path) -> None:
    flag = tmp_path / "release"
    subscription = runner.hub.subscribe("proc__live")
    task_id = start(runner, "event_then_wait", task_publish_id="live", flag=str(flag))
    batch = await asyncio.wait_for(subscription.next_batch(), 10)
    while not any(isinstance(item, StreamEvent) for item in batch):
        batch = await asyncio.wait_for(subscription.next_batch(), 10)
    assert data_of(batch) == ["first"]
    assert runner.get(task_id).status is TaskStatus.RUNNING  # type: ignore[union-attr]
    flag.touch()
    assert (await finished(runner, task_id)).result == "released"


async def test_late_subscriber_gets_whole_history(runner: Runner) -> None:
    task_id = start(runner, "process_events", task_publish_id="late", count=20)
    await finished(runner, task_id)
    items = await collect(runner.hub.subscribe("proc__late"))
    assert data_of(items) == [f"<li>{i}</li>===>>.data" for i in range(20)]
    assert isinstance(items[0], Start) and isinstance(items[-1], StreamEnd)


async def test_many_subscribers_all_receive_every_event(runner: Runner) -> None:
    subscriptions = [runner.hub.subscribe("aio__many") for _ in range(100)]
    start(runner, "async_events", task_publish_id="many", count=200)
    results = await asyncio.gather(*(collect(sub) for sub in subscriptions))
    expected = [f"<li>{i}</li>===>>.data" for i in range(200)]
    assert all(data_of(items) == expected for items in results)


async def test_slow_subscriber_is_cut_off_and_others_are_untouched(
    make_runner: RunnerFactory,
) -> None:
    runner = await make_runner(subscriber_max_pending=10)
    hub = runner.hub
    slow = hub.subscribe("aio__slow")
    fast = hub.subscribe("aio__slow")
    fast_items = asyncio.ensure_future(collect(fast))
    task_id = runner.submit(
        build_spec(T + "async_events", (), {"task_publish_id": "slow", "count": 100})
    )
    record = await runner.wait(task_id, 10)
    assert record.status is TaskStatus.SUCCESS
    assert len(data_of(await fast_items)) == 100
    with pytest.raises(SubscriberTooSlow) as raised:
        while True:
            await slow.next_batch()
    assert raised.value.resume_after == 0
    resumed = await collect(hub.subscribe("aio__slow", after=raised.value.resume_after))
    assert len(data_of(resumed)) == 100


async def test_concurrency_limit_queues_fifo(make_runner: RunnerFactory) -> None:
    runner = await make_runner(max_concurrency=1)
    first = runner.submit(build_spec(T + "async_sleep_for", (0.2,), {}))
    second = runner.submit(build_spec(T + "async_identity", ("second",), {}))
    third = runner.submit(build_spec(T + "add", (1, 1), {}))
    await eventually(
        lambda: getattr(runner.get(first), "status", None) is TaskStatus.RUNNING, 5, "started"
    )
    assert runner.get(second).status is TaskStatus.QUEUED  # type: ignore[union-attr]
    assert runner.queue_size == 2
    records = [await runner.wait(task_id, 10) for task_id in (first, second, third)]
    assert all(record.status is TaskStatus.SUCCESS for record in records)
    assert records[0].stopped <= records[1].started  # type: ignore[operator]
    assert records[1].stopped <= records[2].started  # type: ignore[operator]


@pytest.mark.parametrize("func", ["async_sleep_for", "sleep_for", "thread_sleep_for", "stubborn"])
async def test_cancel_running_task_leaves_neighbour_untouched(runner: Runner, func: str) -> None:
    neighbour = start(runner, "process_events", task_publish_id="n", count=30, pause=0.02)
    victim = start(runner, func, 30)
    await asyncio.sleep(0.3)  # let the victim get going; the assertion below does not depend on it
    assert runner.cancel(victim) is True
    record = await finished(runner, victim)
    assert record.status is TaskStatus.CANCELLED
    assert record.result == record.error == "cancelled"  # Django Q: the result of a failure
    other = await finished(runner, neighbour)
    assert other.status is TaskStatus.SUCCESS and other.result == 30
    # the pool still works (a killed worker was replaced)
    assert (await finished(runner, start(runner, "add", 1, 2))).result == 3


async def test_cancel_queued_task(make_runner: RunnerFactory) -> None:
    runner = await make_runner(max_concurrency=1)
    blocker = runner.submit(build_spec(T + "async_sleep_for", (0.3,), {}))
    queued = runner.submit(build_spec(T + "add", (1, 1), {}))
    assert runner.cancel(queued) is True
    record = await runner.wait(queued, 5)
    assert record.status is TaskStatus.CANCELLED and record.started is None
    assert (await runner.wait(blocker, 5)).status is TaskStatus.SUCCESS
    assert runner.cancel(queued) is False
    with pytest.raises(UnknownTaskError):
        runner.cancel("0" * 32)


@pytest.mark.parametrize("func", ["async_sleep_for", "sleep_for", "stubborn"])
async def test_timeout_stops_task_and_neighbour_finishes(runner: Runner, func: str) -> None:
    neighbour = start(runner, "async_events", task_publish_id="t", count=20, pause=0.02)
    victim = runner.submit(build_spec(T + func, (30,), {"timeout": 0.3}))
    record = await finished(runner, victim)
    assert record.status is TaskStatus.TIMED_OUT
    assert record.error == "timed out after 0.3 s"
    assert (await finished(runner, neighbour)).status is TaskStatus.SUCCESS


async def test_default_timeout_applies(settings: Settings) -> None:
    spec = build_spec(T + "sleep_for", (30,), {}, default_timeout=0.5)
    assert spec.timeout == 0.5


async def test_worker_death_fails_only_its_task(runner: Runner) -> None:
    subscription = runner.hub.subscribe("proc__dies")
    neighbour = start(runner, "sleep_for", 0.5)
    victim = start(runner, "events_then_die", task_publish_id="dies")
    record = await finished(runner, victim)
    assert record.status is TaskStatus.FAILED
    assert record.error == "worker process died: exit code 3"
    items = await collect(subscription)
    assert data_of(items) == ["before death"]
    assert isinstance(items[-1], StreamEnd) and items[-1].state == "failed"
    assert (await finished(runner, neighbour)).result == "slept"
    assert (await finished(runner, start(runner, "add", 2, 2))).result == 4


async def test_worker_killed_by_signal_is_reported(runner: Runner) -> None:
    record = await finished(runner, start(runner, "kill_self"))
    assert record.status is TaskStatus.FAILED
    assert record.error == "worker process died: signal 9 (SIGKILL)"


@pytest.mark.parametrize("func", ["fail", "async_fail"])
async def test_exception_is_recorded_with_traceback(runner: Runner, func: str) -> None:
    record = await finished(runner, start(runner, func, "no good"))
    assert record.status is TaskStatus.FAILED
    assert record.error is not None
    assert "Traceback" in record.error and "ValueError: no good" in record.error
    assert record.result == record.error  # Django Q keeps the error text as the result


async def test_exception_ends_the_stream_with_failed_state(runner: Runner) -> None:
    subscription = runner.hub.subscribe("proc__bad")
    task_id = start(runner, "events_then_fail", task_publish_id="bad")
    items = await collect(subscription)
    assert data_of(items) == ["one", "two"]
    end = items[-1]
    assert isinstance(end, StreamEnd) and end.state == "failed"
    assert end.error == "RuntimeError: broken on purpose"
    assert (await finished(runner, task_id)).status is TaskStatus.FAILED


async def test_hook_receives_the_record_whatever_the_outcome(runner: Runner) -> None:
    seen: asyncio.Queue[TaskRecord] = asyncio.Queue()

    async def hook(record: TaskRecord) -> None:
        await seen.put(record)

    runner.submit(build_spec(T + "add", (1, 2), {"hook": hook}))
    runner.submit(build_spec(T + "fail", (), {"hook": hook}))
    records = [await asyncio.wait_for(seen.get(), 10) for _ in range(2)]
    assert sorted(record.status for record in records) == [TaskStatus.FAILED, TaskStatus.SUCCESS]


async def test_failing_hook_is_logged_only(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    called = asyncio.Event()

    def hook(record: TaskRecord) -> None:
        called.set()
        raise RuntimeError("hook trouble")

    task_id = runner.submit(build_spec(T + "async_identity", (1,), {"hook": hook}))
    assert (await finished(runner, task_id)).status is TaskStatus.SUCCESS
    await asyncio.wait_for(called.wait(), 5)
    for _ in range(50):
        if "hook trouble" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert "hook" in caplog.text and "hook trouble" in caplog.text


async def test_no_retry_by_default(runner: Runner) -> None:
    record = await finished(runner, runner.submit(build_spec(T + "flaky", ("once", 1), {})))
    assert record.status is TaskStatus.FAILED and record.attempt_count == 1


async def test_retries_when_asked(runner: Runner) -> None:
    spec = build_spec(
        T + "flaky", ("twice", 2), {}, q_options={"max_attempts": 3, "retry_delay": 0.01}
    )
    record = await finished(runner, runner.submit(spec))
    assert record.status is TaskStatus.SUCCESS
    assert record.result == 3 and record.attempt_count == 3


async def test_second_run_of_a_busy_stream_is_refused(runner: Runner) -> None:
    first = start(runner, "async_events", task_publish_id="busy", count=3, pause=0.05)
    with pytest.raises(StreamBusyError) as raised:
        start(runner, "async_events", task_publish_id="busy")
    assert raised.value.task_id == first and "aio__busy" in str(raised.value)
    await finished(runner, first)
    second = start(runner, "async_events", task_publish_id="busy", count=2)
    items = await collect(runner.hub.subscribe("aio__busy"))
    await finished(runner, second)
    assert len(data_of(items)) == 2  # a fresh stream: only the new run's events


async def test_unstorable_result_fails_with_clear_error(runner: Runner) -> None:
    record = await finished(runner, start(runner, "async_unpicklable_result"))
    assert record.status is TaskStatus.FAILED
    assert record.error is not None and "could not be stored" in record.error
    process = await finished(runner, start(runner, "unpicklable_result"))
    assert process.status is TaskStatus.FAILED and process.error


async def test_print_output_of_process_task_is_captured(
    runner: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskcast.runtime.events")
    record = await finished(runner, start(runner, "print_lines", 3))
    assert record.output == "line 0\nline 1\nline 2\n"
    assert "printed: line 1" in caplog.text


async def test_current_task_id_inside_tasks(runner: Runner) -> None:
    for func in ("whoami", "async_whoami"):
        task_id = start(runner, func)
        assert (await finished(runner, task_id)).result == task_id


async def test_records_survive_in_store_after_finish(runner: Runner) -> None:
    task_id = start(runner, "add", 20, 22)
    await finished(runner, task_id)
    runner.store.flush()
    stored = runner.store.get_task(task_id)
    assert stored is not None and stored.result == 42 and stored.status is TaskStatus.SUCCESS


async def test_save_false_keeps_nothing_once_finished(runner: Runner) -> None:
    subscription = runner.hub.subscribe("aio__unsaved")
    task_id = runner.submit(
        build_spec(
            T + "async_events", (), {"task_publish_id": "unsaved", "count": 3, "save": False}
        )
    )
    assert runner.get(task_id) is not None  # known while it runs
    record = await finished(runner, task_id)
    assert record.status is TaskStatus.SUCCESS and record.result == 3
    assert len(data_of(await collect(subscription))) == 3  # still streamed live
    runner.store.flush()
    assert runner.get(task_id) is None
    assert runner.store.events(task_id) == []


async def test_a_runner_given_a_hub_serves_every_attempt_on_it(settings: Settings) -> None:
    # The Redis engine hands the runner its own hub: a retry must find its stream open on that
    # hub, not try to open it again beside the first attempt's.
    given = Hub(**hub_options(settings))
    runner = Runner.from_settings(settings, hub=given)
    assert runner.hub is given
    with pytest.raises(AttributeError):
        runner.hub = Hub()  # type: ignore[misc]  # one hub for the runner's life
    runner.store.open()
    await runner.start()
    try:
        spec = build_spec(
            T + "flaky_events",
            (),
            {"task_publish_id": "given", "key": "given", "failures": 1},
            q_options={"max_attempts": 2, "retry_delay": 0},
        )
        subscription = given.subscribe("aio__given")
        task_id = runner.submit(spec)
        record = await finished(runner, task_id)
        assert (record.status, record.result, record.attempt_count) == (TaskStatus.SUCCESS, 2, 2)
        items = await collect(subscription)
        assert data_of(items) == ["attempt 1", "attempt 2"]
        assert isinstance(items[-1], StreamEnd) and items[-1].state == "success"
    finally:
        await runner.close()
        runner.store.close()


async def test_a_queued_record_read_later_says_when_it_was_submitted(
    make_runner: RunnerFactory,
) -> None:
    """`submit` leaves the queued record to be made when it is first read: it must still carry
    the moment of the submit, and be the record the listeners and the store receive."""
    runner = await make_runner()
    queued: list[TaskRecord] = []
    runner.add_listener(lambda r: queued.append(r) if r.status is TaskStatus.QUEUED else None)
    before = utcnow()
    task_id = start(runner, "async_sleep_for", 0.3, task_name="a short nap")
    after = utcnow()
    await asyncio.sleep(0.05)
    record = runner.get(task_id)
    assert record is not None and record.status in (TaskStatus.QUEUED, TaskStatus.RUNNING)
    assert record.enqueued is not None and before <= record.enqueued <= after
    assert queued == [record.replace(status=TaskStatus.QUEUED, started=None, attempt_count=0)]
    assert queued[0].name == "a short nap" and queued[0].args == (0.3,)
    assert (await finished(runner, task_id)).enqueued == record.enqueued

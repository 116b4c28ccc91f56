"""The Redis engine's task plane: one run per stream id across the cluster, cancel from any
node, and clear errors while Redis cannot be reached."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from taskcast.cluster import keys
from taskcast.cluster.cluster_hub import ClusterHub
from taskcast.cluster.task_codec import decode_record
from taskcast.cluster.task_outbox import END_WAIT
from taskcast.errors import EngineUnavailableError, StreamBusyError
from taskcast.records import TaskStatus
from taskcast.spec import TaskSpec, build_spec
from tests.cluster.nodes_for_tasks import NodeFactory, fill, hold, status_on
from tests.support import sample_tasks
from tests.support.eventually import eventually, eventually_awaited
from tests.support.redis_server import RedisServer


def spec_of(func: str, *args: object, stream_id: str | None = None, **options: object) -> TaskSpec:
    return dataclasses.replace(build_spec(func, args, {}, options or None), stream_id=stream_id)


async def test_a_stream_id_runs_once_at_a_time_across_the_cluster(make_node: NodeFactory) -> None:
    a, b = await make_node(), await make_node()
    held = a.runner.submit(spec_of("tests.support.sample_tasks.hold", hold("s"), stream_id="s1"))
    await eventually(lambda: status_on(a, held) is TaskStatus.RUNNING, what="the run starts")
    assert b.tasks is not None
    again = spec_of("tests.support.sample_tasks.async_identity", 1, stream_id="s1")
    with pytest.raises(StreamBusyError) as busy:
        await b.tasks.submit_confirmed(again)
    assert busy.value.task_id == held
    await eventually(lambda: status_on(b, held) is TaskStatus.RUNNING, what="b sees the run")
    with pytest.raises(StreamBusyError):
        b.runner.submit(again)
    sample_tasks.HOLDS["s"].set()
    await a.runner.wait(held, timeout=5)
    await eventually(lambda: status_on(b, held) is TaskStatus.SUCCESS, what="b sees the end")
    task_id = await b.tasks.submit_confirmed(again)
    assert (await b.runner.wait(task_id, timeout=5)).result == 1


async def test_a_task_queued_in_the_cluster_is_cancelled_from_another_node(
    make_node: NodeFactory, redis_server: RedisServer
) -> None:
    a = await make_node(max_async_tasks=1)
    await fill(a)
    b = await make_node(max_async_tasks=1)
    await fill(b)
    task_id = a.runner.submit(spec_of("tests.support.sample_tasks.async_identity", 7))
    await eventually(lambda: status_on(b, task_id) is TaskStatus.QUEUED, what="b knows it")
    assert b.runner.cancel(task_id)
    for node in (a, b):
        await eventually(lambda n=node: status_on(n, task_id) is TaskStatus.CANCELLED)  # type: ignore[misc]
    for key in list(sample_tasks.HOLDS):
        sample_tasks.HOLDS[key].set()

    async def queue_is_empty() -> bool:
        return bool(await a.node.redis.xlen(keys.task_queue("async")) == 0)  # type: ignore[union-attr]

    await eventually_awaited(queue_is_empty, what="its queue entry is gone")
    record = a.runner.get(task_id)
    assert record is not None and record.status is TaskStatus.CANCELLED
    assert record.started is None and record.result == "cancelled before it started"


@pytest.mark.parametrize(
    ("func", "options"),
    [
        ("tests.support.sample_tasks.async_sleep_for", {}),
        ("tests.support.sample_tasks.sleep_for", {"executor": "process"}),
    ],
)
async def test_a_running_task_is_stopped_by_its_node_when_cancelled_from_another(
    make_node: NodeFactory, func: str, options: dict[str, Any]
) -> None:
    a = await make_node(process_workers=1)
    task_id = a.runner.submit(spec_of(func, 60, **options))
    await eventually(
        lambda: status_on(a, task_id) is TaskStatus.RUNNING, timeout=20, what="it runs on a"
    )
    b = await make_node(process_workers=1)
    await eventually(lambda: status_on(b, task_id) is TaskStatus.RUNNING, what="b knows it")
    assert b.runner.cancel(task_id)
    record = await b.runner.wait(task_id, timeout=10)
    assert record.status is TaskStatus.CANCELLED
    assert status_on(a, task_id) is TaskStatus.CANCELLED
    assert not a.runner.is_running_here(task_id)


async def test_without_redis_a_submit_fails_clearly_and_works_again_when_it_is_back(
    make_node: NodeFactory, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("taskcast.cluster.node.RENEW_EVERY", 0.05)
    a = await make_node()
    done = a.runner.submit(spec_of("tests.support.sample_tasks.async_identity", 1))
    assert (await a.runner.wait(done, timeout=5)).result == 1
    redis_server.kill()
    assert a.node is not None
    await eventually(lambda: not a.node.reachable, timeout=10, what="the node notices")  # type: ignore[union-attr]
    with pytest.raises(EngineUnavailableError, match="Redis cannot be reached"):
        a.runner.submit(spec_of("tests.support.sample_tasks.async_identity", 2))
    kept = a.runner.store.get_task(done)
    assert kept is not None and kept.result == 1
    redis_server.start()
    await eventually(lambda: a.node.reachable, timeout=10, what="the node reaches it again")  # type: ignore[union-attr]
    again = a.runner.submit(spec_of("tests.support.sample_tasks.async_identity", 3))
    assert (await a.runner.wait(again, timeout=10)).result == 3
    assert [r.id for r in a.runner.store.list_tasks(limit=10)].count(done) == 1


def test_the_api_answers_503_engine_unavailable_when_redis_cannot_be_reached() -> None:
    from taskcast.web.errors import ApiError

    answer = ApiError.from_core(EngineUnavailableError("Redis cannot be reached (refused)"))
    assert answer is not None
    assert (answer.status, answer.error) == (503, "engine_unavailable")
    assert "Redis" in answer.detail


async def test_a_task_that_ended_here_is_waited_for_before_redis_has_its_end(
    make_node: NodeFactory, redis_server: RedisServer
) -> None:
    """A local end reaches Redis a moment after the store has it, and the store may let a
    success go at once (`save_limit=-1` keeps none): a wait in between still gets the end."""
    a = await make_node(save_limit=-1)
    task_id = a.runner.submit(spec_of("tests.support.sample_tasks.hold", hold("ends-here")))
    await eventually(lambda: a.runner.is_running_here(task_id), timeout=20, what="it runs")
    with redis_server.paused():  # the end cannot be written to Redis now
        sample_tasks.HOLDS["ends-here"].set()
        await eventually(lambda: not a.runner.is_running_here(task_id), what="it ends")
        await a.store.aflush()
        assert a.store.get_task(task_id) is None  # the store kept no success
        record = await asyncio.wait_for(a.runner.wait(task_id), 3)
    assert record.status is TaskStatus.SUCCESS and record.result == "ends-here"


async def test_changes_of_a_task_waiting_together_reach_redis_as_the_newest(
    make_node: NodeFactory, redis_server: RedisServer
) -> None:
    """While Redis cannot take them, a task's `running` and its end wait together; only the
    end is written then (it says all `running` said), once, and the task's hash has it."""
    a = await make_node()
    task_id = a.runner.submit(spec_of("tests.support.sample_tasks.hold", hold("both-wait")))
    await eventually(lambda: a.runner.is_running_here(task_id), timeout=20, what="it runs")
    with redis_server.paused():
        sample_tasks.HOLDS["both-wait"].set()
        await eventually(lambda: not a.runner.is_running_here(task_id), what="it ends")
    assert a.node is not None
    redis = a.node.redis

    async def written() -> list[str]:
        entries: Any = await redis.xrange(keys.CHANGES)  # (entry id, fields) pairs, as bytes
        records = [decode_record(f[b"record"]) for _, f in entries if f[b"id"] == task_id.encode()]
        return [record.status.value for record in records]

    async def ended_in_redis() -> bool:
        return (await written())[-1:] == ["success"]

    await eventually_awaited(ended_in_redis, timeout=20, what="the end reaches Redis")
    statuses = await written()
    assert statuses.count("success") == 1 and statuses[0] == "queued", statuses
    assert (await redis.hget(keys.task(task_id), b"status")) == b"success"


async def test_a_batch_of_changes_carries_the_newest_of_each_task_oldest_task_first(
    make_node: NodeFactory,
) -> None:
    a = await make_node()
    plane = a.tasks
    assert plane is not None
    first = spec_of("tests.support.sample_tasks.async_identity", 1).new_record(
        "1" * 32, status=TaskStatus.RUNNING
    )
    second = spec_of("tests.support.sample_tasks.async_identity", 2).new_record(
        "2" * 32, status=TaskStatus.RUNNING
    )
    first_ended = first.replace(status=TaskStatus.SUCCESS)
    later = second.replace(status=TaskStatus.FAILED)
    outbox = plane._outbox
    outbox._records.extend([first, second, first_ended, later])
    try:
        # Of what waited when the batch was made (the first three), the newest of each task.
        assert outbox._next_writes(3) == [first_ended, second]
    finally:
        outbox._records.clear()


async def test_a_final_record_reaches_redis_after_its_streams_end(
    make_node: NodeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The record and the stream reach other nodes by separate ways. A node that sees a task's
    # end must find its stream's end in Redis too, or a page it serves right then follows the
    # run before (a retry's, say).
    a = await make_node()
    assert isinstance(a.hub, ClusterHub) and a.node is not None
    relay, redis = a.hub.relay, a.node.redis
    released = asyncio.Event()
    flush = relay._flush

    async def held_flush(batch: Any) -> None:
        await released.wait()
        await flush(batch)

    monkeypatch.setattr(relay, "_flush", held_flush)
    spec = build_spec("tests.support.sample_tasks.async_events", (), {"count": 2}, None)
    task_id = a.runner.submit(dataclasses.replace(spec, stream_id="aio__ordered"))
    assert (await a.runner.wait(task_id, timeout=5)).status is TaskStatus.SUCCESS

    async def final_in_redis() -> bool:
        raw = await redis.hget(keys.task(task_id), b"record")
        return isinstance(raw, bytes) and decode_record(raw).status.is_final

    # Long enough for the outbox to write it, were it not waiting for the stream's end.
    await asyncio.sleep(0.3)
    assert not await final_in_redis()
    # A relay that cannot write holds the record back for END_WAIT at most, never for ever.
    await eventually_awaited(final_in_redis, timeout=END_WAIT + 3, what="the record, late")
    released.set()

    async def stream_ended() -> bool:
        return await redis.hget(keys.stream_meta("aio__ordered"), "state") == b"success"

    await eventually_awaited(stream_ended, what="the stream's end, once the relay writes")

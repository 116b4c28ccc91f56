"""Recovery of a dead node, in one process: cores on one Redis, one of which vanishes mid-task
without any cleanup (it stops renewing its key and writes nothing more). Within the bound its
running task is interrupted everywhere (or run again when it has attempts left), its stream
ends for every subscriber, its stream id is free, and what it had claimed runs elsewhere once.
The bound is shortened here (node TTL 1 s); docs/scale-out.md gives the real one."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from taskcast.cluster import keys, task_scripts
from taskcast.core import Core
from taskcast.hub.hub import Item, StreamEnd, StreamEvent, Subscription
from taskcast.records import TaskStatus
from taskcast.spec import TaskSpec, build_spec
from tests.cluster.nodes_for_tasks import NodeFactory, fill, hold, status_on
from tests.support import sample_tasks
from tests.support.eventually import eventually, eventually_awaited

#: seconds within which the shortened settings below recover a dead node, with room to spare
BOUND = 15.0


@pytest.fixture(autouse=True)
def quick_recovery(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node is dead 1 s after its last renewal; the recovery looks every 0.2 s."""
    monkeypatch.setattr("taskcast.cluster.node.NODE_TTL", 1.0)
    monkeypatch.setattr("taskcast.cluster.node.RENEW_EVERY", 0.2)
    monkeypatch.setattr("taskcast.cluster.recovery.RECOVER_EVERY", 0.2)
    monkeypatch.setattr("taskcast.cluster.recovery.LOCK_TTL", 0.6)
    monkeypatch.setattr("taskcast.cluster.recovery.CONFIRM_AFTER", 0.5)


def spec_of(
    func: str, stream_id: str | None = None, options: dict[str, Any] | None = None, **kwargs: Any
) -> TaskSpec:
    spec = build_spec(f"tests.support.sample_tasks.{func}", (), kwargs, options)
    return dataclasses.replace(spec, stream_id=stream_id)


async def vanish(core: Core) -> None:
    """The node dies as with SIGKILL, seen from Redis: it stops renewing its key, taking and
    writing, and leaves everything it held where it was; its connections close, as a dead
    process's do (a blocked read left open would take the next entry for the dead node). Its
    tasks go on in this process but reach Redis no more."""
    assert core.node is not None and core.tasks is not None and core.cluster_hub is not None
    assert core.recovery is not None and core.node._renewer is not None
    core.node._renewer.cancel()
    for loop in core.tasks._loops:
        loop.cancel()
    core.tasks.owned.clear()  # its record changes are not written any more
    relay = core.cluster_hub.relay
    assert relay._writer is not None
    relay._writer.cancel()
    relay._writer = None
    assert core.recovery._loop is not None
    core.recovery._loop.cancel()
    await core.node.redis.connection_pool.disconnect()


async def read_until(subscription: Subscription, done: Any, timeout: float = BOUND) -> list[Item]:
    items: list[Item] = []
    async with asyncio.timeout(timeout):
        while not items or not done(items):
            batch = await subscription.next_batch()
            assert batch, f"the subscription ended without a stream end: {items}"
            items += batch
    return items


def ended(items: list[Item]) -> bool:
    return isinstance(items[-1], StreamEnd)


async def test_a_node_that_dies_mid_task_has_it_interrupted_and_its_stream_stopped_everywhere(
    make_node: NodeFactory,
) -> None:
    b = await make_node(max_async_tasks=1)
    await fill(b, "fill-b")
    a = await make_node()  # the only node with room: it takes the task
    assert a.node is not None and b.tasks is not None and b.node is not None
    task_id = b.runner.submit(spec_of("held_stream", stream_id="r1", key=hold("r1")))
    await eventually(lambda: a.runner.is_running_here(task_id), what="a runs it")
    await eventually(lambda: status_on(b, task_id) is TaskStatus.RUNNING, what="b sees it run")
    watcher = b.hub.subscribe("r1")
    first = await read_until(watcher, lambda items: isinstance(items[-1], StreamEvent))
    assert [item.seq for item in first if isinstance(item, StreamEvent)] == [1]

    await vanish(a)
    items = await read_until(watcher, ended)
    end = items[-1]
    assert isinstance(end, StreamEnd) and end.state == "interrupted"
    assert a.node.id in (end.error or "")
    record = await b.runner.wait(task_id, timeout=BOUND)
    assert record.status is TaskStatus.INTERRUPTED and record.success is False
    assert record.error is not None and a.node.id in record.error
    stored = b.store.get_task(task_id)
    assert stored is not None and stored.status is TaskStatus.INTERRUPTED

    redis = b.node.redis
    assert not await redis.exists(keys.node_tasks(a.node.id))
    consumers = await redis.xinfo_consumers(keys.task_queue("async"), keys.TASK_GROUP)
    assert a.node.id.encode() not in [consumer["name"] for consumer in consumers]
    # A second pass finds the work done and writes nothing.
    changes = await redis.xlen(keys.CHANGES)
    assert b.recovery is not None
    assert await b.recovery.recover_node(a.node.id)
    assert await b.recovery.recover_task(a.node.id, task_id)
    assert await redis.xlen(keys.CHANGES) == changes

    sample_tasks.HOLDS["fill-b"].set()
    sample_tasks.HOLDS["r1"].set()  # a's run ends in this process, unseen by the cluster
    again = await b.tasks.submit_confirmed(spec_of("held_stream", stream_id="r1", key="r1"))
    assert (await b.runner.wait(again, timeout=BOUND)).status is TaskStatus.SUCCESS
    assert status_on(b, task_id) is TaskStatus.INTERRUPTED


async def test_a_task_with_attempts_left_runs_again_on_a_live_node(
    make_node: NodeFactory,
) -> None:
    b = await make_node(max_async_tasks=1)
    await fill(b, "fill-b2")
    a = await make_node()
    options = {"max_attempts": 2}
    task_id = b.runner.submit(spec_of("held_stream", "r2", options, key=hold("r2")))
    await eventually(lambda: a.runner.is_running_here(task_id), timeout=20, what="a runs it")
    watcher = b.hub.subscribe("r2")
    await read_until(watcher, lambda items: isinstance(items[-1], StreamEvent))
    c = await make_node()  # where the next attempt goes: nobody watches the stream there

    await vanish(a)
    sample_tasks.HOLDS["r2"].set()  # its next attempt runs through
    first_run = await read_until(watcher, ended)
    assert isinstance(first_run[-1], StreamEnd) and first_run[-1].state == "interrupted"
    record = await b.runner.wait(task_id, timeout=BOUND)
    assert record.status is TaskStatus.SUCCESS and record.attempt_count == 2
    assert c.store.get_task(task_id) == record
    # The second attempt's stream, from its start, seen on another node.
    late = b.hub.subscribe("r2")
    items = await read_until(late, ended)
    assert [item.seq for item in items if isinstance(item, StreamEvent)] == [1, 2]
    assert isinstance(items[-1], StreamEnd) and items[-1].state == "success"
    sample_tasks.HOLDS["fill-b2"].set()


@pytest.mark.parametrize("claimed", [True, False], ids=["claimed", "only-given"])
async def test_a_task_a_dead_node_took_but_never_started_runs_elsewhere_once(
    make_node: NodeFactory, claimed: bool
) -> None:
    b = await make_node(max_async_tasks=1)
    key = f"once-{claimed}"
    await fill(b, f"fill-{key}")
    assert b.tasks is not None and b.node is not None
    task_id = await b.tasks.submit_confirmed(spec_of("note_run", key=key))
    redis, queue, ghost = b.node.redis, keys.task_queue("async"), "ghost-node"
    # A node that read the entry (and claimed the task) and died before it started it.
    given: Any = await redis.xreadgroup(keys.TASK_GROUP.decode(), ghost, {queue: ">"}, count=1)
    assert given[0][1][0][1][b"id"] == task_id.encode()
    if claimed:
        claim = redis.register_script(task_scripts.CLAIM)
        reply = await claim(
            keys=[keys.task(task_id), keys.node_tasks(ghost)], args=[ghost, task_id]
        )
        assert reply[0] == b"ok"
    sample_tasks.HOLDS[f"fill-{key}"].set()

    record = await b.runner.wait(task_id, timeout=BOUND)
    assert record.status is TaskStatus.SUCCESS
    assert len(sample_tasks.NOTED[key]) == 1

    async def nothing_left() -> bool:
        pending: Any = await redis.xpending(queue, keys.TASK_GROUP)
        return bool(pending["pending"] == 0 and await redis.xlen(queue) == 0)

    await eventually_awaited(nothing_left, timeout=BOUND, what="no entry left to run it again")
    assert not await redis.exists(keys.node_tasks(ghost))
    assert len(sample_tasks.NOTED[key]) == 1

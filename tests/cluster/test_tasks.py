"""The Redis engine's task plane: a task submitted on any node runs on a node with room, and
its record, result and group answer on every node."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from taskcast import defaults
from taskcast.cluster import keys
from taskcast.core import Core
from taskcast.groups import count_group, fetch_group, result_group
from taskcast.records import TaskStatus
from taskcast.spec import build_spec
from taskcast.web.factory import create_app
from tests.cluster.nodes_for_tasks import NodeFactory, fill, hold
from tests.support import sample_tasks
from tests.support.eventually import eventually, eventually_awaited
from tests.support.redis_server import RedisServer


def submit(core: Core, func: str, *args: object, **options: object) -> str:
    return core.runner.submit(build_spec(func, args, {}, options or None))


async def test_a_task_submitted_on_one_node_runs_on_another_with_room(
    make_node: NodeFactory,
) -> None:
    full = await make_node(max_async_tasks=1)
    free = await make_node(max_async_tasks=4)
    keys = [hold(f"room-{n}") for n in range(3)]
    ids = [submit(full, "tests.support.sample_tasks.hold", key) for key in keys]
    await eventually(
        lambda: (
            full.runner.limits()["async"].running == 1
            and free.runner.limits()["async"].running == 2
        ),
        what="one task on the full node, two on the free one",
    )
    assert full.runner.limits()["async"].waiting == 0
    for key in keys:
        sample_tasks.HOLDS[key].set()
    records = [await full.runner.wait(task_id, timeout=5) for task_id in ids]
    assert [record.status for record in records] == [TaskStatus.SUCCESS] * 3
    assert sorted(record.result for record in records) == sorted(keys)


async def test_the_record_and_result_of_a_task_answer_on_every_node(
    make_node: NodeFactory,
) -> None:
    other = await make_node(max_async_tasks=1)
    await fill(other)
    runs = await make_node()
    task_id = submit(other, "tests.support.sample_tasks.async_identity", 5, group="sums")
    record = await other.runner.wait(task_id, timeout=5)
    assert record.status is TaskStatus.SUCCESS and record.result == 5
    assert other.runner.store.get_task(task_id) is not None
    local = runs.runner.get(task_id)
    assert local is not None and local.result == 5 and local.status is TaskStatus.SUCCESS
    await eventually(lambda: other.runner.get(task_id) == record, what="the end on both")


async def test_a_process_task_runs_on_a_node_with_a_free_worker(make_node: NodeFactory) -> None:
    asker = await make_node(process_workers=1, max_async_tasks=1)
    await fill(asker)
    busy = submit(asker, "tests.support.sample_tasks.sleep_for", 30, executor="process")
    await eventually(lambda: asker.runner.is_running_here(busy), timeout=20, what="worker busy")
    worker = await make_node(process_workers=1)
    task_id = submit(asker, "tests.support.sample_tasks.add", 20, 22, executor="process")
    record = await asker.runner.wait(task_id, timeout=20)
    assert record.status is TaskStatus.SUCCESS and record.result == 42
    ran = worker.runner.get(task_id)
    assert ran is not None and ran.status is TaskStatus.SUCCESS
    assert asker.runner.cancel(busy)


async def test_group_calls_answer_on_a_node_that_ran_none_of_the_group(
    make_node: NodeFactory,
) -> None:
    asks = await make_node(max_async_tasks=1)
    await fill(asks)
    runs = await make_node()
    ids = [submit(runs, "tests.support.sample_tasks.async_identity", n, group="g") for n in (1, 2)]
    for task_id in ids:
        await runs.runner.wait(task_id, timeout=5)
    defaults.RUNNER.install(asks.runner)
    await eventually(lambda: count_group("g") == 2, what="both ends known on the other node")
    assert sorted(result_group("g") or []) == [1, 2]
    assert {record.id for record in fetch_group("g") or []} == set(ids)


async def test_the_console_of_another_node_lists_the_task_and_its_end(
    make_node: NodeFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    runs = await make_node()
    app = create_app(
        database=str(tmp_path / "console.sqlite3"), process_workers=1, engine=redis_server.url
    )
    async with TestClient(TestServer(app)) as client:
        task_id = submit(runs, "tests.support.sample_tasks.async_identity", "seen")
        await runs.runner.wait(task_id, timeout=5)

        async def listed() -> bool:
            answer = await (await client.get("/api/tasks")).json()
            return any(
                task["id"] == task_id and task["status"] == "success" for task in answer["tasks"]
            )

        await eventually_awaited(listed, what="the other node's console lists the task")


async def test_a_node_that_joins_later_lists_the_tasks_older_than_the_changes_kept(
    make_node: NodeFactory,
) -> None:
    """The stream of changes keeps the newest ~10,000; the tasks' hashes keep every task for 7
    days, and a joining node copies them (the changes are dropped here to show it)."""
    a = await make_node()
    ids = [submit(a, "tests.support.sample_tasks.async_identity", n) for n in range(3)]
    for task_id in ids:
        assert (await a.runner.wait(task_id, timeout=10)).status is TaskStatus.SUCCESS
    node = a.node
    assert node is not None

    async def ended_in_redis() -> bool:
        statuses = [await node.redis.hget(keys.task(task_id), b"status") for task_id in ids]
        return statuses == [b"success"] * 3

    await eventually_awaited(ended_in_redis, what="the ends reached Redis")
    await node.redis.delete(keys.CHANGES)
    b = await make_node()

    def known_on_b() -> bool:
        records = [b.runner.store.get_task(task_id) for task_id in ids]
        return all(r is not None and r.status is TaskStatus.SUCCESS for r in records)

    await eventually(known_on_b, timeout=10, what="b lists a's older tasks")
    assert sorted(r.result for r in b.runner.store.list_tasks(limit=10)) == [0, 1, 2]

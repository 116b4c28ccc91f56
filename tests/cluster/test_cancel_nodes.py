"""Cancel across real nodes: `python run.py --engine URL` processes on one redis-server. A task
runs on node A; node B's API cancels it; A stops it, and a page watching it on B gets `stop`
with `cancelled`, as on one process."""

from __future__ import annotations

import aiohttp

from tests.cluster.test_stream_nodes import watch
from tests.support.eventually import eventually, eventually_awaited
from tests.support.nodes import Launch, NodeServer, record_on


async def status_on(session: aiohttp.ClientSession, node: NodeServer, task_id: str) -> str | None:
    record = await record_on(session, node, task_id)
    return None if record is None else str(record["status"])


async def test_a_task_running_on_a_is_cancelled_from_b(
    cluster_nodes: Launch, session: aiohttp.ClientSession
) -> None:
    a = await cluster_nodes("a")  # alone, so the task runs there
    task_id = await a.start_task("async_events", task_publish_id="c1", count=100_000, pause=0.01)

    async def running_on_a() -> bool:
        return await status_on(session, a, task_id) == "running"

    await eventually_awaited(running_on_a, timeout=20, what="the task runs on a")
    b = await cluster_nodes("b")
    watcher = watch(session, b, {"id": "aio__c1"})
    await eventually(lambda: len(watcher.seqs) >= 10, timeout=20, what="events on b")

    async with session.post(f"{b.url}/api/tasks/{task_id}/cancel") as answer:
        assert answer.status == 200, await answer.text()
        assert await answer.json() == {"id": task_id, "cancelled": True}

    frames = await watcher.finished()
    assert frames[-1]["status"] == "stop" and frames[-1]["state"] == "cancelled", frames[-2:]
    seqs = watcher.seqs
    assert seqs == list(range(1, len(seqs) + 1))

    async def cancelled_everywhere() -> bool:
        return all([await status_on(session, node, task_id) == "cancelled" for node in (a, b)])

    await eventually_awaited(cancelled_everywhere, timeout=20, what="cancelled on a and b")
    async with session.post(f"{b.url}/api/tasks/{task_id}/cancel") as again:
        assert again.status == 409 and (await again.json())["task_status"] == "cancelled"

"""Recovery with real nodes: `python run.py --engine URL` processes on one redis-server. The node
running a task is killed with SIGKILL; a browser watching the task's stream on another node gets
`stop` with `interrupted`, and the API of a live node says so, within the bound that
docs/scale-out.md gives (about 13 s with the default settings)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

from tests.cluster.test_stream_nodes import watch
from tests.support.eventually import eventually, eventually_awaited
from tests.support.nodes import Launch, NodeServer, record_on

#: seconds by which the dead node's task must be recovered: the documented bound, and room for
#: a loaded machine
BOUND = 30.0


async def task_on(session: aiohttp.ClientSession, node: NodeServer, task_id: str) -> dict[str, Any]:
    record = await record_on(session, node, task_id)
    assert record is not None, f"{node.name} does not know task {task_id}"
    return record


async def test_a_node_killed_mid_task_has_it_interrupted_for_watchers_on_other_nodes(
    cluster_nodes: Launch, session: aiohttp.ClientSession
) -> None:
    a = await cluster_nodes("a")  # alone, so the task runs there
    task_id = await a.start_task("async_events", task_publish_id="k1", count=100_000, pause=0.01)

    async def running_on_a() -> bool:
        return bool((await task_on(session, a, task_id))["status"] == "running")

    await eventually_awaited(running_on_a, timeout=20, what="the task runs on a")
    b = await cluster_nodes("b")
    watcher = watch(session, b, {"id": "aio__k1"})
    await eventually(lambda: len(watcher.seqs) >= 20, timeout=20, what="events on b")

    a.kill()
    killed_at = time.monotonic()
    frames = await watcher.finished()
    assert frames[-1]["status"] == "stop" and frames[-1]["state"] == "interrupted", frames[-2:]
    assert time.monotonic() - killed_at < BOUND
    seqs = watcher.seqs
    assert seqs == list(range(1, len(seqs) + 1))  # what reached b came in order, whole

    async def interrupted_on_b() -> bool:
        return bool((await task_on(session, b, task_id))["status"] == "interrupted")

    await eventually_awaited(interrupted_on_b, timeout=BOUND, what="b's API says interrupted")
    record = await task_on(session, b, task_id)
    assert "stopped while running it" in str(record), record

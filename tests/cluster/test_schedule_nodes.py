"""A schedule defined in code on three real nodes (`python run.py --engine`) of one Redis: each
second's due time runs once in the cluster, and every node lists the same runs."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.eventually import eventually_awaited
from tests.support.every_second_schedule import NAME
from tests.support.nodes import Launch, NodeServer

#: due times to see run before the test looks at them
RUNS = 4


async def runs_on(session: aiohttp.ClientSession, node: NodeServer) -> list[dict[str, Any]]:
    """The schedule's finished runs as `node` lists them (its group is the schedule's name)."""
    query = {"group": NAME, "status": "success", "limit": "200"}
    async with session.get(f"{node.url}/api/tasks", params=query) as answer:
        assert answer.status == 200, await answer.text()
        listed: list[dict[str, Any]] = (await answer.json())["tasks"]
        return listed


async def test_three_nodes_run_each_due_time_of_a_coded_schedule_once(
    cluster_nodes: Launch,
) -> None:
    flags = ("--tasks", "tests.support.every_second_schedule")
    nodes = [await cluster_nodes(name, *flags) for name in "abc"]
    async with aiohttp.ClientSession() as session:

        async def enough() -> bool:
            return len(await runs_on(session, nodes[0])) >= RUNS

        await eventually_awaited(enough, timeout=30, what=f"{RUNS} runs of the schedule")
        ids = {run["id"] for run in await runs_on(session, nodes[0])}
        dues = []
        for task_id in sorted(ids):
            async with session.get(f"{nodes[0].url}/api/tasks/{task_id}") as answer:
                dues.append((await answer.json())["kwargs"]["due"])
        assert len(dues) == len(set(dues)), f"a due time ran more than once: {sorted(dues)}"

        async def listed_everywhere() -> bool:
            for node in nodes[1:]:
                if not ids <= {run["id"] for run in await runs_on(session, node)}:
                    return False
            return True

        await eventually_awaited(listed_everywhere, timeout=10, what="the runs on every node")

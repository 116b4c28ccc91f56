"""Schedules on the Redis engine: every node knows the schedule, and each due time runs on one
node of the cluster only, with its record on every node. The nodes share a clock the tests move
by hand, as the scheduler tests do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskcast import defaults
from taskcast.core import Core
from taskcast.records import TaskStatus
from taskcast.schedules.entry import ScheduleEntry
from taskcast.schedules.helpers import hourly
from taskcast.settings import Settings
from tests.support import sample_tasks
from tests.support.eventually import eventually
from tests.support.redis_server import RedisServer

#: the schedule `tests.support.coded_schedules` defines in code: hourly at :15
CODED = "tests.support.sample_tasks.note_run"
START = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday, noon
FIRST_DUE = START.replace(minute=15)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


StartNode = Callable[[], Awaitable[Core]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def start_node(
    settings: Settings, redis_server: RedisServer, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[StartNode]:
    """Start nodes of one cluster, each with its own database and a scheduler on `clock` that
    registers the schedule of `tests.support.coded_schedules`; all closed at the end."""
    made: list[Core] = []

    async def start() -> Core:
        chosen = Settings.build(
            settings,
            database=str(tmp_path / f"node{len(made)}.sqlite3"),
            engine=redis_server.url,
            timezone="UTC",
            task_modules=("tests.support.coded_schedules",),
        )
        core = Core(chosen, schedules=True)
        assert core.scheduler is not None
        core.scheduler.clock = core.scheduler.definitions.clock = clock
        await core.start()
        made.append(core)
        return core

    try:
        yield start
    finally:
        defaults.RUNNER.install(None)
        for core in reversed(made):
            await core.close(grace=0)


def entry(core: Core, name: str = CODED) -> ScheduleEntry:
    assert core.scheduler is not None
    return core.scheduler.get(name)


async def run_due_everywhere(nodes: list[Core], first: int = 0) -> None:
    """Each node finds what is due (node `first` asks first) and acts on Redis's answers."""
    for core in nodes[first:] + nodes[:first]:
        assert core.scheduler is not None
        core.scheduler.run_due()
    for core in nodes:
        assert core.scheduler is not None
        await core.scheduler.claims_answered()


def runs(core: Core, name: str = CODED) -> list[str]:
    """The ids of the schedule's runs in this node's store, oldest first."""
    return [r.id for r in reversed(core.runner.store.list_tasks(schedule=name, limit=100))]


def finished(core: Core, count: int, name: str = CODED) -> bool:
    records = core.runner.store.list_tasks(schedule=name, limit=100)
    return len(records) == count and all(r.status is TaskStatus.SUCCESS for r in records)


async def test_a_schedule_in_code_runs_once_per_due_time_on_three_nodes(
    start_node: StartNode, clock: FakeClock
) -> None:
    nodes = [await start_node() for _ in range(3)]
    assert {entry(core).next_run for core in nodes} == {FIRST_DUE}
    dues = [FIRST_DUE + timedelta(hours=hour) for hour in range(4)]
    for count, due in enumerate(dues, start=1):
        clock.now = due
        await run_due_everywhere(nodes, first=count % 3)
        for core in nodes:
            await eventually(
                lambda core=core, count=count: finished(core, count),  # type: ignore[misc]
                what=f"{count} run(s), each once, in every node's store",
            )
    ids = runs(nodes[0])
    assert len(set(ids)) == len(dues)
    assert all(runs(core) == ids for core in nodes)
    started_here = [entry(core).last_task for core in nodes]
    for core in nodes:
        after = entry(core)
        assert after.last_run == dues[-1] and after.next_run == dues[-1] + timedelta(hours=1)
        assert after.last_skip is None
        await eventually(
            lambda core=core: entry(core).last_task == ids[-1],  # type: ignore[misc]
            what="the newest run of the cluster is the last task on every node",
        )
    assert ids[-1] in started_here


async def test_a_node_with_an_old_next_run_does_not_run_a_due_time_the_cluster_passed(
    start_node: StartNode, clock: FakeClock
) -> None:
    first, late = await start_node(), await start_node()
    assert late.scheduler is not None
    clock.now = FIRST_DUE
    first_scheduler = first.scheduler
    assert first_scheduler is not None
    first_scheduler.run_due()
    await first_scheduler.claims_answered()
    await eventually(lambda: finished(late, 1), what="the 12:15 run, in the late node's store")
    # The late node's scheduler sees the same due time only now, two hours on: its catch-up
    # ("once") would run 12:15 again, but the cluster has passed it.
    clock.now = FIRST_DUE + timedelta(hours=2)
    late.scheduler.run_due()
    await late.scheduler.claims_answered()
    first_scheduler.run_due()
    await first_scheduler.claims_answered()
    assert entry(late).next_run == entry(first).next_run == FIRST_DUE + timedelta(hours=3)
    await eventually(lambda: finished(first, 2) and finished(late, 2), what="two runs in all")
    assert runs(first) == runs(late)


async def test_no_node_runs_a_due_time_while_redis_cannot_be_reached(
    start_node: StartNode, clock: FakeClock, redis_server: RedisServer
) -> None:
    nodes = [await start_node() for _ in range(3)]
    redis_server.kill()
    for core in nodes:
        assert core.node is not None
        await eventually(
            lambda core=core: not core.node.reachable,  # type: ignore[misc]
            what="every node knows Redis is gone",
        )
    clock.now = FIRST_DUE
    await run_due_everywhere(nodes)
    for core in nodes:
        missed = entry(core)
        assert runs(core) == []
        assert missed.last_skip is not None and "Redis cannot be reached" in missed.last_skip
        assert missed.next_run == FIRST_DUE + timedelta(hours=1)
    redis_server.start()
    for core in nodes:
        assert core.node is not None
        await eventually(
            lambda core=core: core.node.reachable,  # type: ignore[misc]
            10,
            what="every node reaches Redis again",
        )
    clock.now = FIRST_DUE + timedelta(hours=1)
    await run_due_everywhere(nodes)
    for core in nodes:
        await eventually(
            lambda core=core: finished(core, 1),  # type: ignore[misc]
            10,
            what="the next due time runs once, in every node's store",
        )


async def test_overlap_skip_sees_a_run_another_node_started(
    start_node: StartNode, clock: FakeClock
) -> None:
    nodes = [await start_node() for _ in range(2)]
    key = "cluster-overlap"
    sample_tasks.HOLDS[key] = asyncio.Event()
    for core in nodes:
        assert core.scheduler is not None
        core.scheduler.schedule(
            "tests.support.sample_tasks.hold", key, name="slow", rule=hourly(at=30)
        )
    due = START.replace(minute=30)
    clock.now = due
    await run_due_everywhere(nodes)
    for core in nodes:
        await eventually(
            lambda core=core: len(runs(core, "slow")) == 1,  # type: ignore[misc]
            what="the first run, in every node's store",
        )
    clock.now = due + timedelta(hours=1)
    await run_due_everywhere(nodes, first=1)
    skipped = [entry(core, "slow") for core in nodes if entry(core, "slow").last_skip]
    assert len(skipped) == 1 and "still running" in (skipped[0].last_skip or "")
    sample_tasks.HOLDS[key].set()
    for core in nodes:
        await eventually(
            lambda core=core: finished(core, 1, "slow"),  # type: ignore[misc]
            what="one run in all, finished",
        )

"""In-process nodes of one cluster for the task plane's tests: each a `Core` on its own
database, all on one real redis-server; and the helpers those tests share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from taskcast import defaults
from taskcast.core import Core
from taskcast.records import TaskStatus
from taskcast.settings import Settings
from taskcast.spec import build_spec
from tests.support import sample_tasks
from tests.support.eventually import eventually
from tests.support.redis_server import RedisServer

NodeFactory = Callable[..., Awaitable[Core]]


@pytest.fixture
async def make_node(
    settings: Settings, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[NodeFactory]:
    """Start cores on the test's Redis, each on its own database; all closed at the end."""
    made: list[Core] = []

    async def make(schedules: bool = False, **overrides: Any) -> Core:
        database = str(tmp_path / f"node{len(made)}.sqlite3")
        overrides.setdefault("engine", redis_server.url)
        core = Core(Settings.build(settings, database=database, **overrides), schedules=schedules)
        await core.start()
        made.append(core)
        return core

    try:
        yield make
    finally:
        defaults.RUNNER.install(None)
        for core in reversed(made):
            await core.close(grace=0)


def hold(key: str) -> str:
    """A key for `sample_tasks.hold` and its kin: the task runs until `HOLDS[key]` is set."""
    sample_tasks.HOLDS[key] = asyncio.Event()
    return key


def status_on(core: Core, task_id: str) -> TaskStatus | None:
    """The task's status as this node knows it (None: not heard of)."""
    record = core.runner.get(task_id)
    return None if record is None else record.status


async def fill(core: Core, key: str | None = None) -> str:
    """Take the one async place of `core` until `HOLDS[key]` is set (or the test ends); the id
    of the task that holds it."""
    key = hold(key or f"fill-{id(core)}")
    task_id = core.runner.submit(build_spec("tests.support.sample_tasks.hold", (key,), {}, None))
    await eventually(lambda: core.runner.is_running_here(task_id), what="the filler runs")
    return task_id

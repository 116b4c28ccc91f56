"""In-process nodes of one cluster for the task plane's tests: each a `Core` on its own
database, all on one real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from taskcast import defaults
from taskcast.core import Core
from taskcast.settings import Settings
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

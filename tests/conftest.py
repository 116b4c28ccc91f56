"""Shared fixtures: settings on a temporary database, a started core's runner, the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from taskcast import defaults
from taskcast.core import Core
from taskcast.runtime.runner import Runner
from taskcast.settings import Settings
from taskcast.web.factory import create_app
from taskcast.web.keys import CORE


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database=str(tmp_path / "taskcast.sqlite3"),
        process_workers=2,
        cancel_grace=0.5,
        shutdown_grace=0.5,
    )


RunnerFactory = Callable[..., Awaitable[Runner]]


@pytest.fixture
async def make_runner(settings: Settings) -> AsyncIterator[RunnerFactory]:
    """Start runners on their own store and hub (settings with `overrides`), without HTTP and
    without a scheduler (the schedule tests drive their own); each is the default runner from
    its start, and all are closed at the end."""
    made: list[Core] = []

    async def make(**overrides: Any) -> Runner:
        core = Core(Settings.build(settings, **overrides), schedules=False)
        await core.start()
        made.append(core)
        return core.runner

    try:
        yield make
    finally:
        defaults.RUNNER.install(None)  # also one a test installed itself
        for core in made:
            await core.close(grace=0)


@pytest.fixture
async def runner(make_runner: RunnerFactory) -> Runner:
    """A started runner on its own store and hub, installed as the default, without HTTP."""
    return await make_runner()


ClientFactory = Callable[..., Any]


@pytest.fixture
async def make_client(aiohttp_client: Any, settings: Settings) -> ClientFactory:
    """Build the real app with `create_app(**overrides)` and return a test client for it."""

    async def make(**overrides: Any) -> TestClient[web.Request, web.Application]:
        merged = {
            "database": settings.database,
            "process_workers": 2,
            "cancel_grace": 0.5,
            "shutdown_grace": 0.5,
            **overrides,
        }
        client: TestClient[web.Request, web.Application] = await aiohttp_client(
            create_app(**merged)
        )
        return client

    return make


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[web.Request, web.Application]:
    made: TestClient[web.Request, web.Application] = await make_client()
    return made


def app_runner(client: TestClient[web.Request, web.Application]) -> Runner:
    return client.app[CORE].runner

"""Shared fixtures: settings on a temporary database, a started runner, the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app.hub import Hub
from app.runner import Runner, install_default_runner
from app.settings import Settings
from app.store import Store
from app.web.application import create_app
from app.web.keys import RUNNER


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database=str(tmp_path / "taskcast.sqlite3"),
        process_workers=2,
        cancel_grace=0.5,
        shutdown_grace=0.5,
    )


@pytest.fixture
async def runner(settings: Settings) -> AsyncIterator[Runner]:
    """A started runner on its own store and hub, installed as the default, without HTTP."""
    store = Store(settings.database, save_limit=settings.save_limit)
    store.open()
    hub = Hub(
        max_events=settings.history_max_events,
        max_bytes=settings.history_max_bytes,
        keep_head=settings.history_keep_head,
        kept_streams=settings.kept_streams,
        max_pending=settings.subscriber_max_pending,
    )
    runner = Runner(settings, hub, store)
    await runner.start()
    install_default_runner(runner)
    try:
        yield runner
    finally:
        install_default_runner(None)
        await runner.close(grace=0)
        hub.shutdown()
        store.close()


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
    return client.app[RUNNER]

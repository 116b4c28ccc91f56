"""Real nodes of a cluster for the Redis engine's tests: `python run.py --engine URL` servers on
free 127.0.0.1 ports, each with its own SQLite file and log, driven from outside.

Tasks are started through stdin (tests/soak/remote.py: the public task API from a thread of the
server), streams are read over the channel. Every wait is bounded; every server is killed at
the end of its test, and a failing test prints the logs of its nodes.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest

from tests.support.redis_server import RedisServer, free_port
from tests.support.remote_server import RemoteServer

#: seconds a node gets to say it is ready and to listen
START_TIMEOUT = 30.0


class NodeServer(RemoteServer):
    """One `python run.py --engine ...` process."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, port: int, log: Path):
        super().__init__(name, process, port)
        self.log = log

    @classmethod
    async def start(
        cls, name: str, folder: Path, engine: str, log: IO[bytes], *flags: str
    ) -> NodeServer:
        port = free_port()
        flags_here = ["--engine", engine, "--db", str(folder / f"{name}.sqlite3"), "--workers", "1"]
        process = await cls.launch(name, port, [*flags_here, *flags], log, START_TIMEOUT)
        return cls(name, process, port, folder / f"{name}.log")

    def kill(self) -> None:
        """SIGKILL to the node and its workers."""
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)


Launch = Callable[..., Awaitable[NodeServer]]


def nodes_on(engine: str, folder: Path) -> Callable[[], AsyncIterator[Launch]]:
    """An async generator for a fixture: `await launch(name)` starts a node on `engine`."""

    async def launcher() -> AsyncIterator[Launch]:
        started: list[NodeServer] = []
        logs: list[IO[bytes]] = []

        async def launch(name: str, *flags: str) -> NodeServer:
            logs.append((folder / f"{name}.log").open("wb"))
            node = await NodeServer.start(name, folder, engine, logs[-1], *flags)
            started.append(node)
            return node

        try:
            yield launch
        finally:
            for node in started:
                node.kill()
                await node.process.wait()
            for file in logs:
                file.close()

    return launcher


def print_logs(folder: Path) -> None:
    """The nodes' logs, for a failing test's report."""
    for log in sorted(folder.glob("*.log")):
        print(f"---- {log.name} ----\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
async def cluster_nodes(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Launch]:
    """`await cluster_nodes(name)`: a real node on the test's redis-server. The nodes' logs are
    printed at the end (pytest shows them for a failing test only)."""
    folder = tmp_path / "nodes"
    folder.mkdir()
    async for launch in nodes_on(redis_server.url, folder)():
        try:
            yield launch
        finally:
            print_logs(folder)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP and websocket client for the test's nodes."""
    async with aiohttp.ClientSession() as client:
        yield client


async def record_on(
    session: aiohttp.ClientSession, node: NodeServer, task_id: str
) -> dict[str, Any] | None:
    """A task's record as `GET /api/tasks/<id>` on `node` gives it; None while the node has not
    heard of the task."""
    async with session.get(f"{node.url}/api/tasks/{task_id}") as response:
        if response.status == 404:
            return None
        assert response.status == 200, await response.text()
        record: dict[str, Any] = await response.json()
        return record

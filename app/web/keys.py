"""Typed application keys: every app-wide object of a Taskcast app, made once at startup."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from typing import Any, Final

from aiohttp import web
from taskcast.hub.hub import Hub
from taskcast.runtime.runner import Runner
from taskcast.settings import Settings
from taskcast.store.store import Store


class SocketSet:
    """The open channel websockets, so shutdown can close each one with 1001, and the tasks
    that close sockets on the hub's behalf, so none is dropped before it finishes."""

    def __init__(self) -> None:
        self._sockets: set[web.WebSocketResponse] = set()
        self._closing: set[asyncio.Task[None]] = set()

    def add(self, ws: web.WebSocketResponse) -> None:
        self._sockets.add(ws)

    def discard(self, ws: web.WebSocketResponse) -> None:
        self._sockets.discard(ws)

    def close_later(self, closing: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(closing)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def __len__(self) -> int:
        return len(self._sockets)

    def __iter__(self) -> Iterator[web.WebSocketResponse]:
        return iter(list(self._sockets))


SETTINGS: Final = web.AppKey("taskcast_settings", Settings)
STORE: Final = web.AppKey("taskcast_store", Store)
HUB: Final = web.AppKey("taskcast_hub", Hub)
RUNNER: Final = web.AppKey("taskcast_runner", Runner)
SOCKETS: Final = web.AppKey("taskcast_sockets", SocketSet)
#: where the console and API are mounted: "" for `create_app`, e.g. "/taskcast" when embedded
BASE: Final = web.AppKey("taskcast_base", str)
#: the path of the Pytigon channel on the host app
CHANNEL_PATH: Final = web.AppKey("taskcast_channel_path", str)


def local_path(request: web.Request) -> str:
    """The request's path below where Taskcast is mounted ("/api/tasks", "/login"...)."""
    base = request.app.get(BASE, "")
    return request.path[len(base) :] if request.path.startswith(base) else request.path

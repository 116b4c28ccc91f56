"""Typed keys: every app-wide object of a Taskcast app (made once, before the app starts), and
the one request key, the signed-in user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from aiohttp import web

from taskcast.core import Core
from taskcast.hub.hub import Hub
from taskcast.registry import Registry
from taskcast.runtime.runner import Runner
from taskcast.schedules.scheduler import Scheduler
from taskcast.settings import Settings
from taskcast.store.store import Store
from taskcast.watchdog import LoopWatchdog
from taskcast.web.close_pacing import ClosePacer
from taskcast.web.heartbeat import Heartbeat

if TYPE_CHECKING:
    # These three types live in modules that read their own keys from here; their keys name
    # the type in the annotation only, so importing this module never imports them.
    from taskcast.web.embed import Taskcast
    from taskcast.web.feed import Feed
    from taskcast.web.security import AccessPolicy


class SocketSet:
    """The open channel websockets, so shutdown can close each one with 1001, their heartbeat
    (`taskcast.web.heartbeat`), and the pacing of their close handshakes after `stop`
    (`taskcast.web.close_pacing`)."""

    def __init__(self, heartbeat_seconds: float = 30.0) -> None:
        self._sockets: set[web.WebSocketResponse] = set()
        self.heartbeat = Heartbeat(heartbeat_seconds)
        self.close_pacer = ClosePacer()

    def add(self, ws: web.WebSocketResponse) -> None:
        self._sockets.add(ws)

    def discard(self, ws: web.WebSocketResponse) -> None:
        self._sockets.discard(ws)

    def __len__(self) -> int:
        return len(self._sockets)

    def __iter__(self) -> Iterator[web.WebSocketResponse]:
        return iter(list(self._sockets))


SETTINGS: Final = web.AppKey("taskcast_settings", Settings)
#: store, hub, runner and scheduler together; the four keys after it hold its parts
CORE: Final = web.AppKey("taskcast_core", Core)
STORE: Final = web.AppKey("taskcast_store", Store)
HUB: Final = web.AppKey("taskcast_hub", Hub)
RUNNER: Final = web.AppKey("taskcast_runner", Runner)
SCHEDULER: Final = web.AppKey("taskcast_scheduler", Scheduler)
#: the tasks that may be started over HTTP (from `Settings.task_modules`)
REGISTRY: Final = web.AppKey("taskcast_registry", Registry)
#: who may do what: the host's policy, or the shared token, or open
POLICY: Final[web.AppKey[AccessPolicy]] = web.AppKey("taskcast_access")
#: the console's live feed of record changes
FEED: Final[web.AppKey[Feed]] = web.AppKey("taskcast_feed")
SOCKETS: Final = web.AppKey("taskcast_sockets", SocketSet)
#: `time.monotonic()` when the app was built, for the health check's uptime
STARTED_AT: Final = web.AppKey("taskcast_started_at", float)
#: where the console and API are mounted: "" for `create_app`, e.g. "/taskcast" when embedded
BASE: Final = web.AppKey("taskcast_base", str)
#: whether the demo pages are mounted: by `create_app` (whose `tasks` module holds the demo's
#: tasks), not by `setup()`, where the host's task modules are loaded instead
DEMO: Final = web.AppKey("taskcast_demo", bool)
#: the path of the Pytigon channel on the host app
CHANNEL_PATH: Final = web.AppKey("taskcast_channel_path", str)
#: `Settings.allowed_hosts` made ready to compare with a request's Host (`taskcast.web.hosts`)
ALLOWED_HOSTS: Final[web.AppKey[frozenset[str]]] = web.AppKey("taskcast_allowed_hosts")
#: the loop watchdog, with the collector's pauses; None when `loop_block_warning` is 0 (off)
WATCHDOG: Final[web.AppKey[LoopWatchdog | None]] = web.AppKey("taskcast_watchdog")
#: the host app's handle on its Taskcast, when embedded with `setup()`
TASKCAST: Final[web.AppKey[Taskcast]] = web.AppKey("taskcast")

#: the user the access policy identified for this request
USER: Final = web.RequestKey("taskcast_user", str)


def local_path(request: web.Request) -> str:
    """The request's path below where Taskcast is mounted ("/api/tasks", "/login"...)."""
    base = request.app.get(BASE, "")
    return request.path[len(base) :] if request.path.startswith(base) else request.path

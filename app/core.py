"""The core of a Taskcast server: store -> hub -> runner -> scheduler, built and started in that
order and closed in reverse.

Everything a server runs besides HTTP. `create_app`, `setup()` and the tests all build one
`Core` and drive it with `start()` and `close()`, so the order of the parts is written down
once, here. Plain asyncio: it never imports aiohttp.web.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from taskcast import defaults
from taskcast.cluster.cluster_hub import ClusterHub
from taskcast.cluster.node import Node
from taskcast.cluster.recovery import Recovery
from taskcast.cluster.schedule_claims import ScheduleClaims
from taskcast.cluster.tasks import TaskPlane
from taskcast.hub.hub import Hub
from taskcast.runtime.runner import Runner
from taskcast.schedules.scheduler import Scheduler
from taskcast.schedules.store import ScheduleStore
from taskcast.settings import Settings
from taskcast.store.store import Store

logger = logging.getLogger(__name__)

#: seconds each part of the Redis engine gets to close (its last writes to Redis included)
CLUSTER_CLOSE_TIMEOUT = 10.0


class Core:
    """The store, the hub, the runner and (unless `schedules=False`) the scheduler of a server;
    on the Redis engine, first of all the node (`taskcast.cluster.node`).

    The parts are made at once and opened by `start()`: each part stopped in `close()` was
    started, and a part that fails to start takes down the ones before it. The runner and the
    scheduler become the process's defaults (for `async_task` and `schedule` without an app)
    while they run.
    """

    def __init__(self, settings: Settings, *, schedules: bool = True) -> None:
        self.settings = settings
        #: this server as a node of a cluster; None on the memory engine
        self.node = Node(settings.engine) if settings.engine != "memory" else None
        #: the hub that carries streams across nodes; None on the memory engine
        self.cluster_hub = ClusterHub(settings, self.node) if self.node is not None else None
        self.runner = Runner.from_settings(settings, hub=self.cluster_hub)
        self.store: Store = self.runner.store
        self.hub: Hub = self.runner.hub
        #: None for a core without schedules: tests and tools that drive their own Scheduler
        self.scheduler = (
            Scheduler(self.runner, ScheduleStore(settings.database), settings)
            if schedules
            else None
        )
        #: the node's part of the cluster's tasks; None on the memory engine
        self.tasks = TaskPlane(self.node, self.runner) if self.node is not None else None
        if self.node is not None and self.scheduler is not None:
            # Each due time of a schedule runs on the node that claims it first.
            self.scheduler.claims = ScheduleClaims(self.node)
        #: the node's part in taking back what dead nodes held; None on the memory engine
        self.recovery = (
            Recovery(self.node, self.tasks, settings.stream_expiry)
            if self.node is not None and self.tasks is not None
            else None
        )
        self._stack: contextlib.AsyncExitStack | None = None
        self._grace = settings.shutdown_grace

    async def start(self) -> None:
        """Open the store, start the runner, then the scheduler."""
        if self._stack is not None:
            raise RuntimeError("the core has been started already")
        async with contextlib.AsyncExitStack() as stack:
            if self.node is not None:
                await self.node.start()
                stack.push_async_callback(self._bounded, self.node.close, "leaving the cluster")
            if self.cluster_hub is not None:
                await self.cluster_hub.start()
                stack.push_async_callback(
                    self._bounded, self.cluster_hub.stop, "the streams' last changes"
                )
            self._open_store()
            stack.callback(self.store.close)
            # The hub has nothing to start; at the end it releases whoever still listens.
            stack.callback(self.hub.shutdown)
            await self.runner.start()
            defaults.RUNNER.install(self.runner)
            if self.tasks is not None:
                # Closed after the runner, so the records of the runs it stops reach Redis.
                stack.push_async_callback(
                    self._bounded, self.tasks.close, "the tasks' last records"
                )
            stack.push_async_callback(self._close_runner)
            if self.tasks is not None:
                await self.tasks.start()
            if self.recovery is not None:
                # Stopped before the task plane closes: a closing node takes nothing back.
                self.recovery.start()
                stack.push_async_callback(self._bounded, self.recovery.close, "the recovery")
            if self.scheduler is not None:
                await self.scheduler.start()
                defaults.SCHEDULER.install(self.scheduler)
                stack.push_async_callback(self._stop_scheduler, self.scheduler)
            self._stack = stack.pop_all()

    def begin_close(self) -> None:
        """Refuse new tasks at once and start the tasks' grace (the server's first shutdown
        step, so the grace runs while the web server drains its connections, not after)."""
        if self.tasks is not None:
            self.tasks.stop_taking()
        self.runner.begin_close(self._grace)

    async def close(self, grace: float | None = None) -> None:
        """Stop the scheduler, then the runner (running tasks get `grace` seconds, by default
        `Settings.shutdown_grace`), release the hub's subscribers, and close the store."""
        if grace is not None:
            self._grace = grace
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def _bounded(self, close: Callable[[], Awaitable[None]], what: str) -> None:
        """A part of the Redis engine closes within CLUSTER_CLOSE_TIMEOUT, however Redis is:
        a server must stop even while Redis hangs (what did not reach it is logged)."""
        try:
            async with asyncio.timeout(CLUSTER_CLOSE_TIMEOUT):
                await close()
        except TimeoutError:
            logger.error(
                "closing: %s did not reach Redis within %.0f s; stopped without it",
                what,
                CLUSTER_CLOSE_TIMEOUT,
            )

    def _open_store(self) -> None:
        interrupted = self.store.open()
        if interrupted:
            logger.warning(
                "%d task(s) left unfinished by the previous server are now 'interrupted'",
                len(interrupted),
            )

    async def _close_runner(self) -> None:
        if self.tasks is not None:
            self.tasks.stop_taking()
        await self.runner.close(self._grace)
        defaults.RUNNER.remove(self.runner)

    async def _stop_scheduler(self, scheduler: Scheduler) -> None:
        defaults.SCHEDULER.remove(scheduler)
        await scheduler.stop()

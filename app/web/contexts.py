"""The app's life cycle: one cleanup context per resource, and the one on_shutdown hook.

aiohttp enters the cleanup contexts in the order they were appended and leaves them in reverse,
so the core (store -> hub -> runner -> scheduler) starts first and closes last, after the feed
and the watchdog that depend on it. The collector's tuning comes after the core and the feed: it
freezes what they built at start-up.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from taskcast import collector
from taskcast.web.channel import close_sockets
from taskcast.web.keys import CORE, FEED, RUNNER, SETTINGS, WATCHDOG


async def core_context(app: web.Application) -> AsyncIterator[None]:
    """Start the store, hub, runner and scheduler; close them in reverse at cleanup."""
    core = app[CORE]
    await core.start()
    yield
    await core.close()


async def feed_context(app: web.Application) -> AsyncIterator[None]:
    """The console's feed hears of every record change while the runner runs."""
    runner, feed = app[RUNNER], app[FEED]
    runner.add_listener(feed.publish)
    yield
    runner.remove_listener(feed.publish)


async def watchdog_context(app: web.Application) -> AsyncIterator[None]:
    """Start the app's LoopWatchdog, if `Settings.loop_block_warning` asked for one."""
    watchdog = app[WATCHDOG]
    if watchdog is None:
        yield
        return
    watchdog.start()
    try:
        yield
    finally:
        await watchdog.stop()


async def on_shutdown(app: web.Application) -> None:
    """Refuse new tasks at once and start the tasks' grace, so it runs while aiohttp drains the
    open connections rather than after; then close every open websocket with 1001."""
    app[CORE].begin_close()
    await close_sockets(app)


async def collector_context(app: web.Application) -> AsyncIterator[None]:
    """Tune the garbage collector once everything before it has started; undone at cleanup.
    Only when `Settings.gc_tuning` says so (see `factory.build`)."""
    tuning = collector.tune(app[SETTINGS].gc_thresholds)
    watchdog = app[WATCHDOG]
    if watchdog is not None:
        watchdog.collector.frozen = tuning.frozen
    try:
        yield
    finally:
        tuning.undo()
        if watchdog is not None:
            watchdog.collector.frozen = 0

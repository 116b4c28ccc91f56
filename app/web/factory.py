"""`create_app()`: the whole Taskcast server as one aiohttp application, and `build()`, which
puts Taskcast into an app (for `create_app`, and for `setup()` when embedded)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from taskcast.cluster.sessions import RedisSessions
from taskcast.core import Core
from taskcast.registry import Registry
from taskcast.settings import Settings
from taskcast.watchdog import LoopWatchdog
from taskcast.web import contexts, hosts, look
from taskcast.web.channel import PATH as CHANNEL
from taskcast.web.error_pages import error_pages
from taskcast.web.errors import api_errors
from taskcast.web.feed import Feed
from taskcast.web.jsonview import summary_json
from taskcast.web.keys import (
    ALLOWED_HOSTS,
    BASE,
    CHANNEL_PATH,
    CORE,
    DEMO,
    FEED,
    HUB,
    POLICY,
    REGISTRY,
    RUNNER,
    SCHEDULER,
    SETTINGS,
    SOCKETS,
    STARTED_AT,
    STORE,
    WATCHDOG,
    SocketSet,
)
from taskcast.web.pages import JINJA_FILTERS
from taskcast.web.routes import add_routes
from taskcast.web.security import AccessPolicy, OpenAccess, TokenAccess, access_middleware
from taskcast.web.sessions import Sessions, SessionStore


def package_folder(name: str) -> Path:
    """`templates` or `static`: inside the installed package, or beside `app/` in a checkout."""
    package = Path(__file__).resolve().parent.parent
    inside = package / name
    return inside if inside.is_dir() else package.parent / name


TEMPLATES = package_folder("templates")
STATIC = package_folder("static")


def watchdog_for(settings: Settings) -> LoopWatchdog | None:
    """The loop watchdog `Settings.loop_block_warning` asks for (0 or less: none)."""
    threshold = settings.loop_block_warning
    return LoopWatchdog(threshold) if threshold and threshold > 0 else None


def sessions_for(core: Core) -> SessionStore:
    """The login's sessions: this process's own, or on the Redis engine every node's."""
    if core.node is not None:
        return RedisSessions(core.node.redis, core.settings.session_seconds)
    return Sessions(core.settings.session_seconds, core.settings.max_sessions)


def taskcast_app(settings: Settings) -> web.Application:
    """An empty app with Taskcast's body limit and middlewares: error pages for browsers, JSON
    errors, then access."""
    return web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_pages, api_errors, access_middleware],
    )


def build(
    host: web.Application,
    console: web.Application,
    settings: Settings,
    access: AccessPolicy | None,
    base: str,
    channel_path: str,
    demo: bool = False,
) -> None:
    """Put Taskcast into `host` (its life cycle and the channel) and `console` (pages and API).

    They are one app for `create_app`, or the host and a sub-app mounted at `base` when
    embedded. The same objects sit behind the same keys in both. `demo` mounts the demo pages.
    """
    registry = Registry()
    registry.add_modules(settings.task_modules)
    core = Core(settings)
    assert core.scheduler is not None
    # who may do what
    if access is None:
        access = (
            TokenAccess(settings.auth_token, login_url=f"{base}/login", sessions=sessions_for(core))
            if settings.auth_token
            else OpenAccess()
        )
    # every app-wide object, made once, behind its key in both apps
    shared: list[tuple[web.AppKey[Any], Any]] = [
        (SETTINGS, settings),
        (POLICY, access),
        (ALLOWED_HOSTS, hosts.normalise(settings.allowed_hosts)),
        (REGISTRY, registry),
        (CORE, core),
        (STORE, core.store),
        (HUB, core.hub),
        (RUNNER, core.runner),
        (SCHEDULER, core.scheduler),
        (FEED, Feed(access.can_see, functools.partial(summary_json, base, channel_path))),
        (SOCKETS, SocketSet(settings.channel_heartbeat)),
        (STARTED_AT, time.monotonic()),
        (WATCHDOG, watchdog_for(settings)),
        (BASE, base),
        (CHANNEL_PATH, channel_path),
        (DEMO, demo),
    ]
    for target in {id(host): host, id(console): console}.values():
        for key, value in shared:
            target[key] = value
    # jinja2, with autoescape: nothing a user typed reaches a page unescaped
    aiohttp_jinja2.setup(
        console,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        filters=JINJA_FILTERS,
    )
    env = aiohttp_jinja2.get_env(console)
    env.globals["status_look"] = look.status_look
    env.globals["status_table"] = look.status_table
    # every route
    add_routes(host, console, channel_path=channel_path, static=STATIC, demo=demo)
    # cleanup contexts in dependency order: aiohttp leaves them backwards, so the core closes last
    host.cleanup_ctx.append(contexts.core_context)
    host.cleanup_ctx.append(contexts.feed_context)
    # then the collector's tuning: it freezes what the others built at start-up (a host that
    # embeds Taskcast keeps its own collector settings unless it asks for this); the watchdog
    # after it, so the collection that precedes the freeze is not counted as a pause of the run
    if settings.gc_tuning if settings.gc_tuning is not None else host is console:
        host.cleanup_ctx.append(contexts.collector_context)
    host.cleanup_ctx.append(contexts.watchdog_context)
    # the one on_shutdown hook: refuse new tasks, close the websockets with 1001
    host.on_shutdown.append(contexts.on_shutdown)


def create_app(
    settings: Settings | None = None, *, access: AccessPolicy | None = None, **overrides: Any
) -> web.Application:
    """Build the standalone server: settings, then everything `build` puts in one app.

    `access` is a host's own AccessPolicy; by default the server is open, or asks for
    `settings.auth_token` when one is set.
    """
    settings = Settings.build(settings, **overrides)
    app = taskcast_app(settings)  # middlewares: error pages, JSON errors under /api/, access
    build(app, app, settings, access, base="", channel_path=CHANNEL, demo=True)
    return app

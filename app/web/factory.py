"""`create_app()`: the whole Taskcast server as one aiohttp application."""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from taskcast.registry import Registry
from taskcast.runtime.runner import Runner, default_runner, install_default_runner
from taskcast.settings import Settings
from taskcast.watchdog import watchdog_context
from taskcast.web import feed, routes, schedules
from taskcast.web.api import REGISTRY, STARTED_AT, api_errors
from taskcast.web.channel import PATH as CHANNEL
from taskcast.web.channel import close_sockets
from taskcast.web.keys import (
    BASE,
    CHANNEL_PATH,
    HUB,
    RUNNER,
    SETTINGS,
    SOCKETS,
    STORE,
    SocketSet,
)
from taskcast.web.pages import JINJA_FILTERS
from taskcast.web.security import POLICY, AccessPolicy, OpenAccess, TokenAccess, access_middleware

logger = logging.getLogger(__name__)


def package_folder(name: str) -> Path:
    """`templates` or `static`: inside the installed package, or beside `app/` in a checkout."""
    package = Path(__file__).resolve().parent.parent
    inside = package / name
    return inside if inside.is_dir() else package.parent / name


TEMPLATES = package_folder("templates")
STATIC = package_folder("static")


def load_registry(names: tuple[str, ...]) -> Registry:
    """Import the task modules; their @register and @publish functions may be started by HTTP."""
    registry = Registry()
    for name in names:
        try:
            registry.add_module(importlib.import_module(name))
        except ImportError as exc:
            raise RuntimeError(f"cannot import task module {name!r}: {exc}") from exc
    return registry


async def store_context(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    interrupted = store.open()
    if interrupted:
        logger.warning(
            "%d task(s) left unfinished by the previous server are now 'interrupted'",
            len(interrupted),
        )
    yield
    store.close()


async def begin_shutdown(app: web.Application) -> None:
    """The first on_shutdown hook: refuse new tasks at once and start the tasks' grace, so it
    runs while aiohttp drains the open connections rather than after."""
    app[RUNNER].begin_close(app[SETTINGS].shutdown_grace)


async def runner_context(app: web.Application) -> AsyncIterator[None]:
    runner = app[RUNNER]
    await runner.start()
    install_default_runner(runner)
    yield
    await runner.close(app[SETTINGS].shutdown_grace)
    app[HUB].shutdown()
    try:
        if default_runner() is runner:
            install_default_runner(None)
    except RuntimeError:
        pass


def build(
    host: web.Application,
    console: web.Application,
    settings: Settings,
    access: AccessPolicy | None,
    base: str,
    channel_path: str,
) -> None:
    """Put Taskcast into `host` (store, hub, runner, channel) and `console` (pages and API).

    They are one app for `create_app`, or the host and a sub-app mounted at `base` when
    embedded. The same objects sit behind the same keys in both.
    """
    if access is None:
        access = (
            TokenAccess(settings.auth_token, login_url=f"{base}/login")
            if settings.auth_token
            else OpenAccess()
        )
    runner = Runner.from_settings(settings)
    store, hub = runner.store, runner.hub
    shared: list[tuple[web.AppKey[Any], Any]] = [
        (SETTINGS, settings),
        (POLICY, access),
        (REGISTRY, load_registry(settings.task_modules)),
        (STORE, store),
        (HUB, hub),
        (RUNNER, runner),
        (SOCKETS, SocketSet()),
        (STARTED_AT, time.monotonic()),
        (BASE, base),
        (CHANNEL_PATH, channel_path),
    ]
    for target in {id(host): host, id(console): console}.values():
        for key, value in shared:
            target[key] = value
    aiohttp_jinja2.setup(
        console,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        filters=JINJA_FILTERS,
    )
    feed.install(console)
    routes.setup(console, STATIC)
    routes.setup_channel(host, channel_path)
    # In dependency order: cleanup runs them backwards, so the runner stops before the store.
    host.cleanup_ctx.append(store_context)
    host.cleanup_ctx.append(runner_context)
    schedules.setup(host, console)
    host.cleanup_ctx.append(watchdog_context)
    host.on_shutdown.append(begin_shutdown)
    host.on_shutdown.append(close_sockets)


def create_app(
    settings: Settings | None = None, *, access: AccessPolicy | None = None, **overrides: Any
) -> web.Application:
    """Build the standalone server: settings, then everything `build` puts in one app.

    `access` is a host's own AccessPolicy; by default the server is open, or asks for
    `settings.auth_token` when one is set.
    """
    settings = Settings.build(settings, **overrides)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[api_errors, access_middleware(settings.allowed_origins)],
    )
    build(app, app, settings, access, base="", channel_path=CHANNEL)
    return app

"""Embedding: add Taskcast to an existing aiohttp application with `setup(app, ...)`.

The host keeps its routes, middlewares and templates. Taskcast adds its core (store, hub, runner,
scheduler) and what depends on it as cleanup contexts of the host, the Pytigon channel at its
contract path on the host, and its console and API as a sub-app under `base` with their own
middlewares and templates. Views of the host start tasks through the `Taskcast` object
(`app[TASKCAST]`) and render the element with the Jinja global `ptig_task(stream_id)`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from taskcast.core import Core
from taskcast.hub.hub import Hub
from taskcast.records import TaskRecord
from taskcast.runtime.runner import Runner
from taskcast.settings import Settings
from taskcast.spec import build_spec
from taskcast.store.store import Store
from taskcast.web.channel import PATH as CONTRACT_CHANNEL_PATH
from taskcast.web.factory import build, taskcast_app
from taskcast.web.keys import BASE, CHANNEL_PATH, CORE
from taskcast.web.keys import TASKCAST as TASKCAST  # where `taskcast.TASKCAST` comes from
from taskcast.web.security import AccessPolicy

#: what the element holds unless the page gives its own markup: the status mark and a list
DEFAULT_INNER = (
    '<span name="task_status"></span><ul class="data"></ul>'
    '<div name="task_end_info" style="display: none;">Finished.</div>'
)


class Taskcast:
    """The host app's handle on its Taskcast: start tasks, and render their live output."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    @property
    def core(self) -> Core:
        return self._app[CORE]

    @property
    def runner(self) -> Runner:
        return self.core.runner

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def hub(self) -> Hub:
        return self.core.hub

    @property
    def base(self) -> str:
        return self._app[BASE]

    def start(
        self,
        func: str | Callable[..., Any],
        *args: Any,
        started_by: str | None = None,
        **kwargs: Any,
    ) -> TaskRecord:
        """Queue a task like `async_task` (same options) and return its first record."""
        spec = build_spec(func, args, kwargs, default_timeout=self.runner.settings.default_timeout)
        task_id = self.runner.submit(dataclasses.replace(spec, started_by=started_by))
        record = self.runner.get(task_id)
        assert record is not None
        return record

    def get(self, id_or_name: str) -> TaskRecord | None:
        """The record of a task, by id or name: queued, running or finished; None if unknown."""
        return self.runner.get(id_or_name)

    def script_tag(self) -> Markup:
        """The <script> that defines <ptig-task>, served by Taskcast."""
        return Markup('<script type="module" src="{}/static/ptig-task.js"></script>').format(
            self.base
        )

    def element(
        self,
        stream_id: str,
        inner: str | None = None,
        task_href: str | None = None,
        **attributes: str,
    ) -> Markup:
        """`<ptig-task>` subscribed to `stream_id`; `inner` is trusted markup of the page."""
        attrs = {"websocket_href": self._app[CHANNEL_PATH], "task_id": stream_id}
        if task_href:
            attrs["task_href"] = task_href
        attrs.update(attributes)
        rendered = " ".join(f'{name}="{escape(value)}"' for name, value in attrs.items())
        return Markup(
            f"<ptig-task {rendered}>{inner if inner is not None else DEFAULT_INNER}</ptig-task>"
        )

    def install_jinja(self, env: jinja2.Environment) -> None:
        """Give templates `{{ ptig_task(stream_id) }}` and `{{ taskcast_script() }}`."""
        env.globals["ptig_task"] = self.element
        env.globals["taskcast_script"] = self.script_tag


def setup(
    app: web.Application,
    settings: Settings | None = None,
    *,
    base: str = "/taskcast",
    channel_path: str = CONTRACT_CHANNEL_PATH,
    access: AccessPolicy | None = None,
    **overrides: Any,
) -> Taskcast:
    """Add Taskcast to `app`; the console and API go under `base`, the channel to its path.

    Call it before the app starts. If the host uses aiohttp_jinja2, call it after
    `aiohttp_jinja2.setup(app, ...)` so the host's templates get `ptig_task(...)`.
    """
    if not base.startswith("/") or base.endswith("/") or len(base) < 2:
        raise ValueError(
            f"base must look like '/taskcast' (a leading /, no trailing /), not {base!r}"
        )
    settings = Settings.build(settings, **overrides)
    console = taskcast_app(settings)
    build(app, console, settings, access, base=base, channel_path=channel_path)
    app.add_subapp(base, console)
    handle = Taskcast(app)
    app[TASKCAST] = handle
    if aiohttp_jinja2.APP_KEY in app:
        handle.install_jinja(aiohttp_jinja2.get_env(app))
    return handle

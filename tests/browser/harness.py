"""The browser-test harness: a loopback site serving `static/`, test pages and a scripted channel."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from playwright.async_api import ConsoleMessage, Page

from taskcast.web.factory import create_app

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"
CHANNEL_PATH = "/ws/channel/"
WAIT_S = 5.0

#: Runs in every test page before its own scripts: counts the sockets the page opens, records
#: every frame it sends (synchronously, so a test can assert that nothing was sent) and every
#: `ptig-task:*` event that reaches the document.
PROBE_JS = """
(() => {
  const probe = { made: [], sent: [], events: [] };
  window.__probe = probe;
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) { super(...args); probe.made.push(String(args[0])); }
    send(data) { probe.sent.push(String(data)); return super.send(data); }
  };
  for (const name of ['start', 'event', 'stop', 'connection', 'error', 'reset']) {
    document.addEventListener(`ptig-task:${name}`, (event) => {
      probe.events.push({ type: event.type, detail: event.detail, bubbles: event.bubbles,
                          composed: event.composed });
    });
  }
})();
"""

#: A page that imports the module and exposes its exports as `window.ptig`.
LAB_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>lab</title>
<script type="module">
import * as ptig from '/static/ptig-task.js';
window.ptig = ptig;
</script></head>
<body><div id="stage"></div></body></html>
"""


def element_page(
    *,
    websocket_href: str = CHANNEL_PATH,
    task_id: str | None = "demo__1",
    task_href: str | None = None,
    inner: str = '<div name="task_status"></div><div class="data"></div>',
) -> str:
    """A page holding one `<ptig-task>` inside `<div id="box">`."""
    attrs = {"websocket_href": websocket_href, "task_id": task_id, "task_href": task_href}
    text = " ".join(
        f'{name}="{html.escape(value, quote=True)}"' for name, value in attrs.items() if value
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>element</title>
<script type="module" src="/static/ptig-task.js"></script></head>
<body><div id="box"><ptig-task {text}>{inner}</ptig-task></div></body></html>
"""


class PageLog:
    """What a page reported: uncaught errors and console messages (`type: text`)."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.console: list[str] = []

    def on_console(self, message: ConsoleMessage) -> None:
        self.console.append(f"{message.type}: {message.text}")

    def on_error(self, error: Exception) -> None:
        self.errors.append(str(error))


@dataclasses.dataclass(eq=False)
class Connection:
    """One websocket the element opened to the fake channel, driven by the test."""

    request: web.Request
    ws: web.WebSocketResponse
    frames: asyncio.Queue[Any] = dataclasses.field(default_factory=asyncio.Queue)
    closed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def receive(self, *, pings: bool = False) -> Any:
        """The next frame the element sent; pings are skipped unless asked for."""
        while True:
            frame = await asyncio.wait_for(self.frames.get(), WAIT_S)
            if pings or not (isinstance(frame, dict) and "ping" in frame):
                return frame

    async def send(self, frame: Mapping[str, Any]) -> None:
        await self.ws.send_str(json.dumps(frame))

    async def start(self) -> None:
        await self.send({"status": "start"})

    async def event(self, data: Any, seq: int | None = None) -> None:
        frame: dict[str, Any] = {"status": "event", "data": data}
        if seq is not None:
            frame["seq"] = seq
        await self.send(frame)

    async def stop(self, **extra: str) -> None:
        """Sends `stop` (with `state`/`error` when given) and closes normally, like the server."""
        await self.send({"status": "stop", **extra})
        await self.ws.close()

    async def close(self, code: int, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())

    def abort(self) -> None:
        """Drops the TCP connection without a closing handshake."""
        transport = self.request.transport
        assert transport is not None
        transport.abort()

    async def wait_closed(self) -> None:
        await asyncio.wait_for(self.closed.wait(), WAIT_S)


@dataclasses.dataclass(frozen=True)
class TaskHit:
    """One GET of a `task_href` URL."""

    path_qs: str
    cookies: Mapping[str, str]


class Site:
    """The test server's state; `reset()` gives each test a fresh channel and page set."""

    def __init__(self) -> None:
        self.server: TestServer | None = None
        self.reset()

    def reset(self) -> None:
        self.pages: dict[str, str] = {"lab": LAB_PAGE}
        #: What the server saw, in order: "GET <path>" for task_href hits, "frame <json>" otherwise.
        self.timeline: list[str] = []
        self.task_hits: list[TaskHit] = []
        self.task_status = 200
        self.opened: list[Connection] = []
        self.incoming: asyncio.Queue[Connection] = asyncio.Queue()

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_static("/static/", STATIC_DIR)
        app.router.add_get("/t/{name}", self._page)
        app.router.add_get("/ws/{tail:.*}", self._channel)
        app.router.add_get("/task/{tail:.*}", self._task)
        return app

    @property
    def root(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/"))

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.port is not None
        return self.server.port

    async def accept(self) -> Connection:
        """The next websocket the page opens."""
        return await asyncio.wait_for(self.incoming.get(), WAIT_S)

    async def close_connections(self) -> None:
        for conn in self.opened:
            if not conn.ws.closed:
                await conn.ws.close()

    async def _page(self, request: web.Request) -> web.Response:
        text = self.pages.get(request.match_info["name"])
        if text is None:
            raise web.HTTPNotFound()
        return web.Response(text=text, content_type="text/html")

    async def _task(self, request: web.Request) -> web.Response:
        self.timeline.append(f"GET {request.path_qs}")
        self.task_hits.append(TaskHit(request.path_qs, dict(request.cookies)))
        return web.json_response({"started": True}, status=self.task_status)

    async def _channel(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(request, ws)
        self.opened.append(conn)
        self.incoming.put_nowait(conn)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    self.timeline.append(f"frame {message.data}")
                    conn.frames.put_nowait(json.loads(message.data))
        finally:
            conn.closed.set()
        return ws


async def probe(page: Page, key: str) -> Any:
    """One list of the page's probe: `made`, `sent` or `events`."""
    return await page.evaluate("(key) => window.__probe[key]", key)


async def dom_events(page: Page, name: str) -> list[Any]:
    """The details of the `ptig-task:<name>` events seen so far, in order."""
    events = await probe(page, "events")
    return [event["detail"] for event in events if event["type"] == f"ptig-task:{name}"]


async def wait_until(page: Page, expression: str, arg: Any = None) -> None:
    """Waits until a JS expression (a function of `arg`) is truthy in the page."""
    await page.wait_for_function(expression, arg=arg, timeout=WAIT_S * 1000)


@contextlib.asynccontextmanager
async def serve_taskcast(folder: Path, **settings: Any) -> AsyncIterator[TestServer]:
    """The real app, on a database in `folder`, served on a free loopback port."""
    app = create_app(
        database=str(folder / "taskcast.sqlite3"), cancel_grace=0.5, shutdown_grace=0.5, **settings
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()

"""The CSV importer: its own pages, login and middleware, with Taskcast embedded in it.

The lines that concern Taskcast are marked; everything else is an ordinary aiohttp app.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from taskcast.records import TaskRecord
from taskcast.web.embed import TASKCAST, setup

HERE = Path(__file__).resolve().parent
USER_COOKIE = "tool_user"
USER = web.RequestKey("tool_user", str)
ADMIN = "admin"


class ToolAccess:
    """Taskcast asks the tool who is signed in, and who may see or cancel what.

    The tool's sign-in is a plain name in a cookie, standing in for a real one (LDAP, SSO...).
    """

    login_url: str | None = "/login"

    async def identify(self, request: web.Request) -> str | None:
        return request.cookies.get(USER_COOKIE) or None

    def can_see(self, user: str | None, record: TaskRecord) -> bool:
        return user == ADMIN or record.started_by == user

    def can_start(self, user: str | None, task_name: str) -> bool:
        return user is not None

    def can_cancel(self, user: str | None, record: TaskRecord) -> bool:
        return self.can_see(user, record)

    def only_started_by(self, user: str | None) -> str | None:
        return None if user == ADMIN else user

    def can_manage_schedules(self, user: str | None) -> bool:
        return user == ADMIN


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def sign_in_required(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The tool's own middleware: its pages need a user (Taskcast's pages ask ToolAccess)."""
    user = request.cookies.get(USER_COOKIE)
    if user:
        request[USER] = user
    elif request.path != "/login" and not request.path.startswith("/taskcast/"):
        raise web.HTTPSeeOther("/login")
    response = await handler(request)
    response.headers["X-Tool"] = "csv-importer"
    return response


@aiohttp_jinja2.template("login.html")
async def login_form(request: web.Request) -> dict[str, Any]:
    return {}


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    name = str(form.get("name", "")).strip()
    if not name.isalnum() or len(name) > 30:
        raise web.HTTPBadRequest(text="a user name is 1 to 30 letters or digits")
    response = web.HTTPSeeOther("/")
    response.set_cookie(USER_COOKIE, name, httponly=True, samesite="Lax")
    raise response


@aiohttp_jinja2.template("home.html")
async def home(request: web.Request) -> dict[str, Any]:
    return {"user": request[USER]}


async def start_import(request: web.Request) -> web.Response:
    form = await request.post()
    text = str(form.get("csv", ""))
    if not text.strip():
        raise web.HTTPBadRequest(text="paste some CSV rows first")
    # Taskcast: start the job in the process pool, recorded as started by this user.
    job = request.app[TASKCAST].start(
        "examples.intranet_tool.jobs.import_rows",
        text=text,
        started_by=request[USER],
        task_publish_id=secrets.token_hex(6),
    )
    raise web.HTTPSeeOther(f"/imports/{job.id}")


@aiohttp_jinja2.template("import.html")
async def show_import(request: web.Request) -> dict[str, Any]:
    taskcast = request.app[TASKCAST]
    record = taskcast.runner.get(request.match_info["id"])
    if record is None or not ToolAccess().can_see(request[USER], record):
        raise web.HTTPNotFound(text="no such import")
    return {"user": request[USER], "job": record}


def make_app(database: str = "data/intranet-tool.sqlite3", **settings: Any) -> web.Application:
    app = web.Application(middlewares=[sign_in_required])
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/", home)
    app.router.add_post("/imports", start_import)
    app.router.add_get("/imports/{id}", show_import)
    # Taskcast: the runner, the channel, and the console under /taskcast, with the tool's users.
    setup(
        app,
        database=database,
        access=ToolAccess(),
        base="/taskcast",
        task_modules=["examples.intranet_tool.jobs"],
        **settings,
    )
    return app

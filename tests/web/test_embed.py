"""Embedding with `setup(app)`: the host keeps its routes and middleware; its users decide."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp_jinja2
import jinja2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from taskcast.records import TaskRecord, TaskStatus
from taskcast.web.embed import TASKCAST, setup
from tests.support.wsclient import CHANNEL, event_data, read_until_closed

Client = TestClient[Any, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UsersByHeader:
    """A host policy: the user is the X-User header; people see their own tasks, admin all."""

    login_url: str | None = None

    async def identify(self, request: web.Request) -> str | None:
        return request.headers.get("X-User")

    def can_see(self, user: str | None, record: TaskRecord) -> bool:
        return user == "admin" or record.started_by == user

    def can_start(self, user: str | None, task_name: str) -> bool:
        return user is not None and user != "guest"

    def can_cancel(self, user: str | None, record: TaskRecord) -> bool:
        return self.can_see(user, record)

    def only_started_by(self, user: str | None) -> str | None:
        return None if user == "admin" else user

    def can_manage_schedules(self, user: str | None) -> bool:
        return user == "admin"


def host_app(database: Path, **options: Any) -> web.Application:
    @web.middleware
    async def stamp(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers["X-Host"] = "yes"
        return response

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="host page")

    app = web.Application(middlewares=[stamp])
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.DictLoader(
            {
                "job.html": "{{ taskcast_script() }}{{ ptig_task(stream_id) }}",
            }
        ),
    )
    app.router.add_get("/", hello)
    setup(
        app,
        database=str(database),
        process_workers=1,
        task_modules=["tests.support.console_tasks"],
        **options,
    )
    return app


async def test_host_routes_middleware_and_taskcast_side_by_side(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client: Client = await aiohttp_client(host_app(tmp_path / "a.sqlite3"))
    home = await client.get("/")
    assert await home.text() == "host page" and home.headers["X-Host"] == "yes"
    console = await client.get("/taskcast/")
    assert console.status == 200 and console.headers["X-Host"] == "yes"
    assert 'href="/taskcast/registry"' in await console.text()
    started = await client.post(
        "/taskcast/api/tasks",
        json={
            "name": "tests.support.console_tasks.count_rows",
            "arguments": {"rows": 3},
            "task_publish_id": "e1",
        },
    )
    body = await started.json()
    assert started.status == 201 and body["url"] == f"/taskcast/tasks/{body['id']}"
    assert body["api_url"] == f"/taskcast/api/tasks/{body['id']}"
    ws = await client.ws_connect(CHANNEL)  # the channel keeps its contract path
    await ws.send_json({"id": "rows__e1"})
    frames = await read_until_closed(ws)
    assert "<li>row 3</li>===>>.data" in event_data(frames)
    assert (await client.get("/taskcast/static/ptig-task.js")).status == 200


async def test_host_views_start_tasks_and_render_the_element(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    app = host_app(tmp_path / "b.sqlite3")

    async def job(request: web.Request) -> web.Response:
        record = request.app[TASKCAST].start(
            "tests.support.console_tasks.count_rows",
            rows=2,
            task_publish_id="view1",
            started_by="ann",
        )
        return aiohttp_jinja2.render_template("job.html", request, {"stream_id": record.stream_id})

    app.router.add_get("/job", job)
    client: Client = await aiohttp_client(app)
    html = await (await client.get("/job")).text()
    assert '<script type="module" src="/taskcast/static/ptig-task.js"></script>' in html
    assert (
        f'<ptig-task websocket_href="{CHANNEL}" task_id="rows__view1">'
        '<span name="task_status"></span><ul class="data"></ul>'
    ) in html
    handle = app[TASKCAST]
    record = handle.store.list_tasks(stream_id="rows__view1")
    assert record and record[0].started_by == "ann"


async def test_element_escapes_attributes(tmp_path: Path) -> None:
    app = host_app(tmp_path / "c.sqlite3")
    markup = str(app[TASKCAST].element('x" onclick="alert(1)'))
    assert 'task_id="x&#34; onclick=&#34;alert(1)"' in markup


async def test_two_apps_in_one_process_do_not_share_state(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    first_app, second_app = host_app(tmp_path / "1.sqlite3"), host_app(tmp_path / "2.sqlite3")
    first: Client = await aiohttp_client(first_app)
    second: Client = await aiohttp_client(second_app)
    one, two = first_app[TASKCAST], second_app[TASKCAST]
    assert one.runner is not two.runner and one.hub is not two.hub
    record = one.start("tests.support.console_tasks.multiply", 2, 3)
    await one.runner.wait(record.id, 10)
    assert (await first.get(f"/taskcast/api/tasks/{record.id}")).status == 200
    assert (await second.get(f"/taskcast/api/tasks/{record.id}")).status == 404
    assert two.get(record.id) is None
    done = one.get(record.id)
    assert done is not None and done.status is TaskStatus.SUCCESS and done.result == 6
    assert one.get(done.name) == done  # by its human name too


async def test_host_authorization_for_api_pages_and_channel(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client: Client = await aiohttp_client(host_app(tmp_path / "d.sqlite3", access=UsersByHeader()))
    ann, bob, admin = ({"X-User": name} for name in ("ann", "bob", "admin"))
    assert (await client.get("/taskcast/api/tasks")).status == 401
    refused = await client.post(
        "/taskcast/api/tasks",
        headers={"X-User": "guest"},
        json={"name": "tests.support.console_tasks.multiply", "arguments": {"a": 1}},
    )
    assert refused.status == 403
    started = await client.post(
        "/taskcast/api/tasks",
        headers=ann,
        json={
            "name": "tests.support.console_tasks.count_rows",
            "arguments": {"rows": 2},
            "task_publish_id": "ann1",
        },
    )
    task = await started.json()
    assert task["started_by"] == "ann"
    # Bob sees nothing of Ann's: not in his list, not by id, not its page, not its stream
    assert (await (await client.get("/taskcast/api/tasks", headers=bob)).json())["total"] == 0
    assert (await client.get(f"/taskcast/api/tasks/{task['id']}", headers=bob)).status == 404
    assert (await client.get(f"/taskcast/tasks/{task['id']}", headers=bob)).status == 404
    assert task["id"][:8] not in await (await client.get("/taskcast/", headers=bob)).text()
    cancel = await client.post(f"/taskcast/api/tasks/{task['id']}/cancel", headers=bob)
    assert cancel.status == 404
    await client.app[TASKCAST].runner.wait(task["id"], 10)
    bob_ws = await client.ws_connect(CHANNEL, headers=bob)
    await bob_ws.send_json({"id": "rows__ann1"})
    closed = await bob_ws.receive(timeout=5)
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1008
    with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
        await client.ws_connect(CHANNEL)
    assert anonymous.value.status == 401
    # Ann and the admin do
    for user in (ann, admin):
        assert (await (await client.get("/taskcast/api/tasks", headers=user)).json())["total"] == 1
        ws = await client.ws_connect(CHANNEL, headers=user)
        await ws.send_json({"id": "rows__ann1"})
        assert "<li>row 2</li>===>>.data" in event_data(await read_until_closed(ws))


def test_base_must_be_a_path(tmp_path: Path) -> None:
    for base in ("", "/", "taskcast", "/taskcast/"):
        with pytest.raises(ValueError, match="base must look like"):
            setup(web.Application(), database=str(tmp_path / "x.sqlite3"), base=base)


async def test_host_decides_who_may_change_schedules(aiohttp_client: Any, tmp_path: Path) -> None:
    client: Client = await aiohttp_client(host_app(tmp_path / "s.sqlite3", access=UsersByHeader()))
    for user, status in (("ann", 403), ("admin", 404)):  # admin passes, to an unknown schedule
        response = await client.post(
            "/taskcast/api/schedules/nightly/pause", headers={"X-User": user}
        )
        assert response.status == status
        deleted = await client.delete("/taskcast/api/schedules/nightly", headers={"X-User": user})
        assert deleted.status == status
    page = await client.post("/taskcast/schedules/nightly/pause", headers={"X-User": "ann"})
    assert page.status == 403

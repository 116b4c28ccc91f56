"""No GET changes state, and every state change passes the access policy.

A GET is what a cross-site link, an image or a prefetch makes without asking anyone, so the
walk below requests every GET route with every query a state change could want, and checks
that nothing was started, cancelled, paused or deleted."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from taskcast.records import TaskRecord, TaskStatus
from taskcast.schedules.helpers import daily
from taskcast.web.demo import MAX_DEMO_RUNS
from taskcast.web.keys import SCHEDULER
from taskcast.web.security import OpenAccess
from tests.conftest import ClientFactory, app_runner
from tests.support.eventually import eventually

Client = TestClient[Any, Any]
TASKS = "tests.support.console_tasks"
#: what a state-changing request could carry, sent to every GET route
STATE_QUERIES: list[dict[str, str]] = [
    {},
    {"task": "seed", "task_publish_id": "walk1"},
    {"task": "tour", "task_publish_id": "walk2", "action": "run", "name": "nightly"},
    {"a": "1", "b": "2", "rows": "1", "token": "x", "next": "/", "delete": "1", "cancel": "1"},
]


class NobodyStarts(OpenAccess):
    def can_start(self, user: str | None, task_name: str) -> bool:
        return False


def state(client: Client) -> tuple[set[str], dict[str, tuple[Any, ...]]]:
    """The unfinished tasks and the schedules, as far as a request could change them."""
    active = {
        record.id
        for record in app_runner(client).active_records()
        if record.status in (TaskStatus.QUEUED, TaskStatus.RUNNING)
    }
    entries = {
        name: (entry.paused, entry.next_run, entry.last_run, entry.last_task)
        for name, entry in client.app[SCHEDULER].entries.items()
    }
    return active, entries


def path_of(resource: web.AbstractResource, task_id: str) -> str:
    """A concrete path for a route: its variables filled with things that exist."""
    path = resource.canonical
    name = "nightly" if "schedules" in path else f"{TASKS}.multiply"
    fill = {"id": task_id, "name": name, "action": "run"}
    for key, value in fill.items():
        path = path.replace("{" + key + "}", value)
    return path


async def test_no_get_route_starts_cancels_or_deletes_anything(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client(task_modules=["tasks", TASKS], timezone="UTC")
    client.app[SCHEDULER].schedule(
        "tests.support.sample_tasks.note_run",
        uuid.uuid4().hex,
        name="nightly",
        rule=daily(at="2:30"),
    )
    running = (await client.post("/api/tasks", json={"name": f"{TASKS}.slow_async"})).json()
    task_id = (await running)["id"]
    before = state(client)
    assert task_id in before[0]
    walked = []
    for route in client.app.router.routes():
        if route.method != "GET" or isinstance(route.resource, web.StaticResource):
            continue
        assert route.resource is not None
        path = path_of(route.resource, task_id)
        for query in STATE_QUERIES:
            response = await client.get(path, params=query, allow_redirects=False)
            assert response.status < 500, (path, query, await response.text())
        walked.append(path)
    assert "/demo/tour" in walked and "/api/feed" in walked  # the walk saw every kind of route
    assert state(client) == before
    assert app_runner(client).cancel(task_id)


async def test_starting_a_demo_takes_a_post(make_client: ClientFactory) -> None:
    client: Client = await make_client(task_modules=["tasks"])
    refused = await client.get("/demo/start", params={"task_publish_id": "get1"})
    assert refused.status == 405
    assert app_runner(client).latest_run("demo__get1") is None


async def test_a_cross_site_demo_start_is_refused(make_client: ClientFactory) -> None:
    client: Client = await make_client(task_modules=["tasks"])
    refused = await client.post(
        "/demo/start",
        data={"task_publish_id": "xsite"},
        headers={"Origin": "http://evil.example"},
    )
    assert refused.status == 403
    assert app_runner(client).latest_run("demo__xsite") is None


async def test_the_access_policy_decides_on_demo_starts(make_client: ClientFactory) -> None:
    client: Client = await make_client(task_modules=["tasks"], access=NobodyStarts())
    refused = await client.post("/demo/start", data={"task_publish_id": "nope1"})
    assert refused.status == 403 and "you may not start tasks.test_task" in await refused.text()
    assert app_runner(client).latest_run("demo__nope1") is None


async def test_demo_runs_are_bounded(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client: Client = await make_client(task_modules=["tasks"])
    caplog.set_level(logging.WARNING, "taskcast.web.demo")
    started: list[TaskRecord] = []
    for n in range(MAX_DEMO_RUNS):
        answer = await client.post(
            "/demo/start", data={"task": "tour", "task_publish_id": f"many{n}"}
        )
        assert answer.status == 200  # the watch page, after the redirect
        record = app_runner(client).latest_run(f"tour__many{n}")
        assert record is not None
        started.append(record)
    one_more = await client.post("/demo/start", data={"task": "tour", "task_publish_id": "onemore"})
    assert one_more.status == 429 and "demos are running" in await one_more.text()
    assert app_runner(client).latest_run("tour__onemore") is None
    assert "the limit; refused one more" in caplog.text
    for record in started:
        app_runner(client).cancel(record.id)
    await eventually(lambda: not app_runner(client).active_records(), 10, "the demo runs to end")
    again = await client.post("/demo/start", data={"task": "tour", "task_publish_id": "later"})
    assert again.status == 200
    latest = app_runner(client).latest_run("tour__later")
    assert latest is not None and app_runner(client).cancel(latest.id)

"""Schedules through HTTP: the JSON API, the list page and its forms, and their errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from taskcast.schedules.helpers import daily
from taskcast.schedules.scheduler import Scheduler
from taskcast.web.keys import SCHEDULER
from tests.conftest import ClientFactory, app_runner
from tests.support import sample_tasks

T = "tests.support.sample_tasks."
Client = TestClient[web.Request, web.Application]


async def client_with(make_client: ClientFactory, **schedules: Any) -> tuple[Client, Scheduler]:
    """The app in UTC, with one `note_run` schedule per keyword (name=rule), due tomorrow."""
    client: Client = await make_client(timezone="UTC")
    scheduler = client.app[SCHEDULER]
    for name, rule in schedules.items():
        scheduler.schedule(T + "note_run", uuid.uuid4().hex, name=name, rule=rule)
    return client, scheduler


async def listed(client: Client) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/schedules")
    assert response.status == 200
    body = await response.json()
    return {item["name"]: item for item in body["schedules"]}


async def test_the_api_lists_schedules_with_their_next_and_last_runs(
    make_client: ClientFactory,
) -> None:
    client, scheduler = await client_with(make_client, nightly=daily(at="2:30"))
    response = await client.get("/api/schedules")
    body = await response.json()
    assert body["timezone"] == "UTC" and body["running"] is True
    [item] = body["schedules"]
    assert item["name"] == "nightly" and item["func"] == T + "note_run"
    assert item["rule"] == "every day at 02:30" and item["paused"] is False
    entry = scheduler.get("nightly")
    assert entry.next_run is not None and item["next_run"] == entry.next_run.isoformat()
    assert item["last_run"] is None and item["last_task"] is None and item["last_status"] is None


async def test_run_now_starts_a_task_whose_status_the_list_shows(
    make_client: ClientFactory,
) -> None:
    client, _ = await client_with(make_client, nightly=daily(at="2:30"))
    response = await client.post("/api/schedules/nightly/run")
    assert response.status == 202
    body = await response.json()
    record = await app_runner(client).wait(body["id"], timeout=10)
    assert record.schedule == "nightly"
    item = (await listed(client))["nightly"]
    assert item["last_task"] == body["id"] and item["last_status"] == "success"
    detail = await (await client.get("/api/schedules/nightly")).json()
    assert detail["last_task"] == body["id"] and detail["skips"] == []


async def test_pause_and_resume_through_the_api(make_client: ClientFactory) -> None:
    client, scheduler = await client_with(make_client, nightly=daily(at="2:30"))
    response = await client.post("/api/schedules/nightly/pause")
    assert response.status == 200 and (await response.json())["paused"] is True
    assert (await listed(client))["nightly"]["paused"] is True
    assert scheduler.timer_delay is None
    response = await client.post("/api/schedules/nightly/resume")
    assert response.status == 200 and (await response.json())["paused"] is False
    assert scheduler.timer_delay is not None


async def test_delete_through_the_api(make_client: ClientFactory) -> None:
    client, scheduler = await client_with(make_client, nightly=daily(at="2:30"))
    response = await client.delete("/api/schedules/nightly")
    assert response.status == 200 and await response.json() == {"deleted": "nightly"}
    assert await listed(client) == {} and scheduler.entries == {}


async def test_api_errors_are_json_with_the_right_status(make_client: ClientFactory) -> None:
    client, scheduler = await client_with(make_client, nightly=daily(at="2:30"))
    for method, path in [
        ("GET", "/api/schedules/nope"),
        ("POST", "/api/schedules/nope/pause"),
        ("POST", "/api/schedules/nope/run"),
        ("DELETE", "/api/schedules/nope"),
    ]:
        response = await client.request(method, path)
        assert response.status == 404, path
        body = await response.json()
        assert body["error"] == "not_found" and "nope" in body["detail"]
    response = await client.post("/api/schedules/nightly/explode")
    assert response.status == 400 and (await response.json())["error"] == "bad_request"
    key = uuid.uuid4().hex
    sample_tasks.HOLDS[key] = asyncio.Event()
    scheduler.schedule(T + "hold", key, name="slow", rule=daily(at="3:00"))
    assert (await client.post("/api/schedules/slow/run")).status == 202
    response = await client.post("/api/schedules/slow/run")
    assert response.status == 409
    body = await response.json()
    assert body["error"] == "busy" and "still going" in body["detail"]
    sample_tasks.HOLDS[key].set()


async def test_the_page_lists_schedules_escaped_with_a_link_to_the_last_run(
    make_client: ClientFactory,
) -> None:
    client, scheduler = await client_with(make_client, **{"<em>report & co": daily(at="6:00")})
    task_id = scheduler.run_now("<em>report & co")
    await app_runner(client).wait(task_id, timeout=10)
    response = await client.get("/schedules")
    assert response.status == 200
    text = await response.text()
    assert "&lt;em&gt;report &amp; co" in text and "<em>report" not in text
    assert "every day at 06:00" in text and "Schedules run on <strong>UTC</strong> time" in text
    assert f'href="/tasks/{task_id}"' in text and "success" in text
    assert 'action="/schedules/%3Cem%3Ereport%20%26%20co/pause"' in text


async def test_the_page_forms_act_and_redirect_back(make_client: ClientFactory) -> None:
    client, scheduler = await client_with(make_client, nightly=daily(at="2:30"))
    checks: list[tuple[str, Callable[[], bool]]] = [
        ("pause", lambda: scheduler.get("nightly").paused),
        ("resume", lambda: not scheduler.get("nightly").paused),
        ("run", lambda: scheduler.get("nightly").last_task is not None),
        ("delete", lambda: "nightly" not in scheduler.entries),
    ]
    for action, check in checks:
        response = await client.post(f"/schedules/nightly/{action}", allow_redirects=False)
        assert response.status == 303 and response.headers["Location"].startswith("/schedules")
        assert check(), action
    followed = await client.post("/schedules/nope/pause")
    assert followed.status == 404
    assert (await client.get("/schedules")).status == 200


async def test_a_page_action_that_cannot_be_done_comes_back_with_a_notice(
    make_client: ClientFactory,
) -> None:
    client, scheduler = await client_with(make_client)
    key = uuid.uuid4().hex
    sample_tasks.HOLDS[key] = asyncio.Event()
    scheduler.schedule(T + "hold", key, name="slow", rule=daily(at="3:00"))
    scheduler.run_now("slow")
    response = await client.post("/schedules/slow/run")
    assert response.status == 200 and str(response.url.path) == "/schedules"
    assert "has a run still going" in await response.text()
    sample_tasks.HOLDS[key].set()

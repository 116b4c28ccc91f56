"""The JSON API: every endpoint and every error status."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from taskcast.schedules.helpers import daily
from taskcast.web.errors import api_errors
from taskcast.web.keys import SCHEDULER
from tests.conftest import ClientFactory, app_runner

TASKS = "tests.support.console_tasks"
Client = TestClient[Any, Any]


@pytest.fixture
async def api(make_client: ClientFactory) -> Client:
    client: Client = await make_client(task_modules=[TASKS])
    return client


async def start(client: Client, name: str, status: int = 201, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/tasks", json={"name": name, **body})
    payload: dict[str, Any] = await response.json()
    assert response.status == status, payload
    return payload


async def finished(client: Client, task_id: str) -> dict[str, Any]:
    await app_runner(client).wait(task_id, 10)
    response = await client.get(f"/api/tasks/{task_id}")
    assert response.status == 200
    payload: dict[str, Any] = await response.json()
    return payload


async def test_registry_lists_what_can_be_started(api: Client) -> None:
    response = await api.get("/api/registry")
    tasks = {task["name"]: task for task in (await response.json())["tasks"]}
    assert set(tasks) == {
        f"{TASKS}.multiply",
        "greet",
        f"{TASKS}.count_rows",
        f"{TASKS}.slow",
        f"{TASKS}.slow_async",
    }
    multiply = tasks[f"{TASKS}.multiply"]
    assert multiply["summary"] == "Multiply two whole numbers."
    assert multiply["parameters"] == [
        {"name": "a", "required": True, "default": None, "type": "int"},
        {"name": "b", "required": False, "default": 2, "type": "int"},
    ]
    rows = tasks[f"{TASKS}.count_rows"]
    assert rows["publish_group"] == "rows" and rows["accepts_more"] is True
    assert [p["name"] for p in rows["parameters"]] == ["rows", "delay"]  # no cproxy


async def test_start_a_task_and_read_it(api: Client) -> None:
    response = await api.post(
        "/api/tasks", json={"name": f"{TASKS}.multiply", "arguments": {"a": 6, "b": 7}}
    )
    assert response.status == 201
    started = await response.json()
    assert response.headers["Location"] == f"/api/tasks/{started['id']}"
    assert len(started["id"]) == 32 and started["url"] == f"/tasks/{started['id']}"
    assert started["func"] == f"{TASKS}.multiply" and started["stream_id"] is None
    record = await finished(api, started["id"])
    assert record["status"] == "success" and record["result"] == 42
    assert record["kwargs"] == {"a": 6, "b": 7}


async def test_start_a_publish_task_with_a_stream_id(api: Client) -> None:
    started = await start(api, f"{TASKS}.count_rows", arguments={"rows": 3}, task_publish_id="x1")
    assert started["stream_id"] == "rows__x1"
    assert started["websocket_href"] == "/schtasks/show_task_events/channel/"
    await finished(api, started["id"])
    events = await (await api.get(f"/api/tasks/{started['id']}/events")).json()
    data = [event["data"] for event in events["events"]]
    assert data[0] == "<ol class='data'></ol>" and "<li>row 3</li>===>>.data" in data
    assert events["finished"] is True and events["status"] == "success"
    later = await (await api.get(f"/api/tasks/{started['id']}/events?after=2")).json()
    assert [event["seq"] for event in later["events"]] == list(range(3, len(data) + 1))
    assert later["next_after"] == len(data)


async def test_keywords_named_like_options_reach_the_function(api: Client) -> None:
    started = await start(
        api, f"{TASKS}.count_rows", arguments={"rows": 1, "group": "not an option", "timeout": 1}
    )
    record = await finished(api, started["id"])
    assert record["status"] == "success"
    assert record["kwargs"]["group"] == "not an option" and record["group"] == "rows"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"name": f"{TASKS}.multiply", "arguments": {"a": "six"}}, "argument 'a' must be int"),
        ({"name": f"{TASKS}.multiply", "arguments": {"a": True}}, "argument 'a' must be int"),
        ({"name": f"{TASKS}.multiply", "arguments": {}}, "missing required argument 'a'"),
        ({"name": f"{TASKS}.multiply", "arguments": {"a": 1, "c": 2}}, "no parameter 'c'"),
        ({"name": f"{TASKS}.count_rows", "arguments": {"cproxy": 1}}, "argument 'cproxy'"),
        ({"name": f"{TASKS}.multiply", "arguments": [1]}, "arguments must be a JSON object"),
        (
            {"name": f"{TASKS}.multiply", "arguments": {"a": 1}, "task_publish_id": "x"},
            "task_publish_id does not apply",
        ),
        ({"name": f"{TASKS}.count_rows", "task_publish_id": "a b"}, "task_publish_id must be"),
        ({"name": f"{TASKS}.count_rows", "task_publish_id": True}, "task_publish_id must be"),
        ({"name": 5}, "name must be"),
        ({"arguments": {}}, "name must be"),
        ({"name": f"{TASKS}.multiply", "extra": 1}, "unknown field(s): extra"),
        ({"name": "greet", "arguments": {"name": "x" * 70_000}}, "longer than"),
    ],
)
async def test_bad_start_requests_are_400(api: Client, body: dict[str, Any], detail: str) -> None:
    response = await api.post("/api/tasks", json=body)
    payload = await response.json()
    assert response.status == 400, payload
    assert payload["error"] in ("bad_request", "bad_arguments")
    assert detail in payload["detail"]


async def test_bodies_that_are_not_json_objects_are_400(api: Client) -> None:
    for data, content_type in (
        ("{", "application/json"),
        ("[1]", "application/json"),
        ("name=x", "application/x-www-form-urlencoded"),
    ):
        response = await api.post("/api/tasks", data=data, headers={"Content-Type": content_type})
        assert response.status == 400
        assert (await response.json())["error"] == "bad_request"


async def test_a_dotted_path_from_a_request_is_never_imported(api: Client) -> None:
    for name in ("tests.support.never_imported.boom", f"{TASKS}.not_registered", "os.system"):
        response = await api.post("/api/tasks", json={"name": name})
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"
    assert "tests.support.never_imported" not in sys.modules


async def test_body_over_the_limit_is_413(make_client: ClientFactory) -> None:
    client = await make_client(task_modules=[TASKS], max_body_bytes=1024)
    response = await client.post(
        "/api/tasks", json={"name": "greet", "arguments": {"name": "x" * 2000}}
    )
    assert response.status == 413
    assert (await response.json())["error"] == "request_entity_too_large"


async def test_second_run_of_a_busy_stream_is_409(api: Client) -> None:
    body: dict[str, Any] = {"arguments": {"rows": 50, "delay": 0.05}, "task_publish_id": "busy"}
    first = await start(api, f"{TASKS}.count_rows", **body)
    refused = await start(api, f"{TASKS}.count_rows", status=409, **body)
    assert refused["error"] == "stream_busy" and refused["running"] == first["id"]
    await api.post(f"/api/tasks/{first['id']}/cancel")


async def test_cancel_then_cancel_again(api: Client) -> None:
    for name in (f"{TASKS}.slow", f"{TASKS}.slow_async"):
        started = await start(api, name)
        response = await api.post(f"/api/tasks/{started['id']}/cancel")
        assert response.status == 200
        assert await response.json() == {"id": started["id"], "cancelled": True}
        assert (await finished(api, started["id"]))["status"] == "cancelled"
        again = await api.post(f"/api/tasks/{started['id']}/cancel")
        assert again.status == 409
        assert (await again.json())["task_status"] == "cancelled"


async def test_unknown_ids_are_404(api: Client) -> None:
    for method, path in (
        ("GET", "/api/tasks/nope"),
        ("POST", "/api/tasks/nope/cancel"),
        ("GET", "/api/tasks/nope/events"),
        ("GET", "/api/nothing-here"),
    ):
        response = await api.request(method, path)
        assert response.status == 404
        assert (await response.json())["error"] in ("not_found",)


async def test_list_filters_and_pages(api: Client) -> None:
    ids = [(await start(api, f"{TASKS}.multiply", arguments={"a": n}))["id"] for n in range(5)]
    greeting = await start(api, "greet", arguments={"name": "x", "times": 1})
    for task_id in [*ids, greeting["id"]]:
        await finished(api, task_id)
    listing = await (await api.get("/api/tasks?limit=2")).json()
    assert listing["total"] == 6 and listing["limit"] == 2
    assert [t["id"] for t in listing["tasks"]] == [greeting["id"], ids[4]]  # newest first
    second = await (await api.get("/api/tasks?limit=2&offset=2")).json()
    assert [t["id"] for t in second["tasks"]] == [ids[3], ids[2]]
    by_func = await (await api.get(f"/api/tasks?func={TASKS}.multiply")).json()
    assert by_func["total"] == 5
    by_status = await (await api.get("/api/tasks?status=success")).json()
    assert by_status["total"] == 6
    for bad in ("limit=0", "limit=201", "offset=-1", "status=bogus", "limit=x"):
        response = await api.get(f"/api/tasks?{bad}")
        assert response.status == 400, bad
        assert (await response.json())["error"] == "bad_request"


async def test_health(api: Client) -> None:
    started = await start(api, f"{TASKS}.slow_async")
    health = await (await api.get("/api/health")).json()
    assert health["status"] == "ok" and health["running"] == 1 and health["queued"] == 0
    assert health["uptime_seconds"] >= 0
    await api.post(f"/api/tasks/{started['id']}/cancel")


async def uptime(client: Client) -> float:
    value: float = (await (await client.get("/api/health")).json())["uptime_seconds"]
    return value


async def test_health_uptime_grows(api: Client) -> None:
    first = await uptime(api)
    deadline = time.monotonic() + 5
    while (later := await uptime(api)) <= first:
        assert time.monotonic() < deadline, f"uptime stayed at {first}"
        await asyncio.sleep(0.01)  # it counts in milliseconds: let one pass
    assert later > first


async def test_token_authentication_for_the_api(make_client: ClientFactory) -> None:
    client = await make_client(task_modules=[TASKS], auth_token="s3cret-token")
    body = {"name": "greet", "arguments": {"name": "ann"}}
    assert (await client.post("/api/tasks", json=body)).status == 401
    wrong = await client.post("/api/tasks", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and (await wrong.json())["error"] == "unauthorized"
    assert (await client.get("/api/tasks")).status == 401
    good = await client.post(
        "/api/tasks", json=body, headers={"Authorization": "Bearer s3cret-token"}
    )
    assert good.status == 201
    assert (await good.json())["started_by"] == "token"
    assert (await client.get("/api/health")).status == 200  # public


async def test_cross_site_posts_are_refused(api: Client) -> None:
    body = {"name": "greet", "arguments": {"name": "x"}}
    evil = await api.post("/api/tasks", json=body, headers={"Origin": "http://evil.example"})
    assert evil.status == 403 and (await evil.json())["error"] == "forbidden"
    own = f"http://{api.host}:{api.port}"
    assert (await api.post("/api/tasks", json=body, headers={"Origin": own})).status == 201
    assert (await api.post("/api/tasks", json=body)).status == 201  # scripts send no Origin


async def test_feed_pushes_record_changes(api: Client) -> None:
    ws = await api.ws_connect("/api/feed")
    started = await start(api, f"{TASKS}.multiply", arguments={"a": 2})
    seen: dict[str, str] = {}
    async with asyncio.timeout(10):
        while seen.get(started["id"]) != "success":
            frame = await ws.receive_json()
            for task in frame["tasks"]:
                seen[task["id"]] = task["status"]
    await ws.close()


async def test_no_new_tasks_while_shutting_down(api: Client) -> None:
    await app_runner(api).close(grace=0)
    response = await api.post("/api/tasks", json={"name": "greet", "arguments": {"name": "x"}})
    assert response.status == 503
    assert (await response.json())["error"] == "shutting_down"
    assert (await (await api.get("/api/health")).json())["status"] == "shutting_down"


async def test_aiohttp_errors_keep_their_code_whatever_python_calls_the_status(
    aiohttp_client: Any,
) -> None:
    # Python 3.13 renamed 413's phrase to "Content Too Large"; the code clients match on stays.
    async def too_large(request: web.Request) -> web.Response:
        raise web.HTTPRequestEntityTooLarge(max_size=1, actual_size=2, reason="Content Too Large")

    app = web.Application(middlewares=[api_errors])
    app.router.add_post("/api/upload", too_large)
    client = await aiohttp_client(app)
    response = await client.post("/api/upload")
    assert response.status == 413
    assert (await response.json())["error"] == "request_entity_too_large"


async def test_unknown_paths_and_methods_say_what_was_wrong(api: Client) -> None:
    missing = await api.get("/api/nothing-here")
    assert missing.status == 404
    assert await missing.json() == {
        "error": "not_found",
        "detail": "no API endpoint at /api/nothing-here",
    }
    wrong = await api.delete("/api/tasks")
    assert wrong.status == 405 and set(wrong.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
    body = await wrong.json()
    assert body["error"] == "method_not_allowed" and body["detail"].startswith("DELETE is not")


async def test_a_busy_stream_is_stream_busy_also_for_a_schedule_run(api: Client) -> None:
    # the same refusal as POST /api/tasks: one code, and the id of the run in the way
    scheduler = api.app[SCHEDULER]
    rows = {"rows": 500, "delay": 0.05}
    scheduler.schedule(
        f"{TASKS}.count_rows", name="rows", rule=daily(at="3:00"), task_publish_id="s1", **rows
    )
    first = await start(api, f"{TASKS}.count_rows", arguments=rows, task_publish_id="s1")
    response = await api.post("/api/schedules/rows/run")
    assert response.status == 409
    body = await response.json()
    assert body["error"] == "stream_busy" and body["running"] == first["id"]
    assert "rows__s1" in body["detail"]
    await api.post(f"/api/tasks/{first['id']}/cancel")

"""The OpenAPI document at /api/openapi.json: valid OpenAPI 3.1, naming exactly the routes the
app has under /api/, and describing what each operation really answers (every documented status
is produced against the real app and its body checked against the document's schema)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from taskcast.schedules.helpers import daily
from taskcast.store.store import Store
from taskcast.web.embed import setup
from taskcast.web.keys import SCHEDULER
from taskcast.web.openapi import document
from tests.conftest import ClientFactory, app_runner
from tests.support import sample_tasks

Client = TestClient[Any, Any]
TASKS = "tests.support.console_tasks"
TOKEN = "open-sesame-123"
DOC_URI = "urn:taskcast:openapi"
EVIL = {"Origin": "http://evil.example"}
#: the answers every operation shares, produced for all of them by one test
SHARED = {"401", "403", "421", "default"}


def operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


class Conformance:
    """Checks answers against the document and notes which documented statuses were seen."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOC_URI, resource)
        self.seen: dict[tuple[str, str], set[str]] = defaultdict(set)

    def responses(self, method: str, path: str) -> dict[str, Any]:
        answers: dict[str, Any] = self.doc["paths"][path][method]["responses"]
        return answers

    def validate(self, pointer: list[str], body: Any) -> None:
        escaped = "/".join(part.replace("~", "~0").replace("/", "~1") for part in pointer)
        schema = {"$ref": f"{DOC_URI}#/{quote(escaped, safe='/~')}"}
        Draft202012Validator(schema, registry=self.registry).validate(body)

    async def check(self, response: Any, method: str, path: str) -> Any:
        """The answer's JSON body, once it matched the documented answer to its status."""
        status = str(response.status)
        answers = self.responses(method, path)
        assert status in answers, (
            f"{method.upper()} {path} answered {status}, which the document does not list: "
            f"{await response.text()}"
        )
        self.seen[(method, path)].add(status)
        documented = answers[status]
        for header in documented.get("headers", {}):
            assert header in response.headers, f"{method.upper()} {path} {status}: no {header}"
        if "content" not in documented:
            return None
        assert response.content_type == "application/json"
        body = await response.json()
        pointer = ["paths", path, method, "responses", status, "content", "application/json"]
        self.validate([*pointer, "schema"], body)
        return body

    def assert_covered(self, *ops: tuple[str, str]) -> None:
        """Every status documented for `ops`, but the shared ones, was seen."""
        for method, path in ops:
            missing = set(self.responses(method, path)) - SHARED - self.seen[(method, path)]
            assert not missing, f"{method.upper()} {path}: no test produced {sorted(missing)}"


async def served(client: Client, path: str = "/api/openapi.json", **headers: str) -> Any:
    response = await client.get(path, headers=headers)
    assert response.status == 200 and response.content_type == "application/json"
    return await response.json()


@pytest.fixture
async def api(make_client: ClientFactory) -> Client:
    client: Client = await make_client(task_modules=[TASKS], timezone="UTC")
    return client


@pytest.fixture
async def conformance(api: Client) -> Conformance:
    return Conformance(await served(api))


# -- the document --------------------------------------------------------------------------------


async def test_the_served_document_is_valid_openapi_3_1(api: Client) -> None:
    doc = await served(api)
    validate(doc)  # raises with the first problem
    assert doc["openapi"] == "3.1.0" and "servers" not in doc and "security" not in doc
    assert doc == document("", token_auth=False)


async def test_with_a_token_it_declares_the_bearer_token_and_the_session_cookie(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client(auth_token=TOKEN)
    assert (await client.get("/api/openapi.json")).status == 401
    doc = await served(client, Authorization=f"Bearer {TOKEN}")
    validate(doc)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerToken"] == {**schemes["bearerToken"], "type": "http", "scheme": "bearer"}
    assert schemes["sessionCookie"]["in"] == "cookie"
    assert schemes["sessionCookie"]["name"] == "taskcast_session"
    assert doc["security"] == [{"bearerToken": []}, {"sessionCookie": []}]
    assert doc["paths"]["/api/health"]["get"]["security"] == []


async def test_embedded_it_is_served_under_the_base_and_names_it(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    host = web.Application()
    setup(host, database=str(tmp_path / "e.sqlite3"), process_workers=1, base="/jobs")
    client: Client = await aiohttp_client(host)
    doc = await served(client, "/jobs/api/openapi.json")
    validate(doc)
    assert doc["servers"] == [{"url": "/jobs"}]
    assert (await client.get("/api/openapi.json")).status == 404


async def test_every_api_route_is_documented_and_every_documented_operation_is_a_route(
    api: Client,
) -> None:
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in api.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"  # aiohttp's automatic companion of each GET
    }
    documented = operations(document("", token_auth=False))
    undocumented = sorted(routes - documented)
    assert not undocumented, (
        f"routes under /api/ missing from the OpenAPI document (add them to "
        f"taskcast.web.apipaths.paths): {undocumented}"
    )
    assert not documented - routes, f"documented but not routes: {sorted(documented - routes)}"


# -- what the API answers ------------------------------------------------------------------------


def concrete(path: str) -> str:
    return path.replace("{id}", "nope").replace("{name}", "nope").replace("{action}", "pause")


async def test_every_operation_answers_the_shared_errors_as_documented(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client(auth_token=TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    doc = await served(client, **bearer)
    conformance = Conformance(doc)
    for method, path in sorted(operations(doc)):
        answers = conformance.responses(method, path)
        url = concrete(path)
        wrong_host = await client.request(method, url, headers={**bearer, "Host": "evil.example"})
        await conformance.check(wrong_host, method, path)
        if "401" in answers:
            await conformance.check(await client.request(method, url), method, path)
        else:  # public: answers without a token
            assert (await client.request(method, url)).status < 400, path
        if "403" in answers:  # a write, or a websocket, from another origin
            cross_site = await client.request(method, url, headers={**bearer, **EVIL})
            await conformance.check(cross_site, method, path)
        shared = SHARED & set(answers) - {"default"}
        assert shared <= conformance.seen[(method, path)], (method, path)


async def test_task_operations_answer_as_documented(api: Client, conformance: Conformance) -> None:
    check = conformance.check
    start, listing = ("post", "/api/tasks"), ("get", "/api/tasks")
    one, cancel = ("get", "/api/tasks/{id}"), ("post", "/api/tasks/{id}/cancel")
    events, registry = ("get", "/api/tasks/{id}/events"), ("get", "/api/registry")

    async def post(body: Any) -> Any:
        response = await api.post("/api/tasks", json=body)
        if response.status == 201:  # what the API took, the document's request schema takes
            conformance.validate(["components", "schemas", "StartRequest"], body)
        return await check(response, *start)

    await check(await api.get("/api/registry"), *registry)
    done = await post({"name": f"{TASKS}.multiply", "arguments": {"a": 6}})
    await app_runner(api).wait(done["id"], 10)
    rows = {"name": f"{TASKS}.count_rows", "arguments": {"rows": 2}, "task_publish_id": "r1"}
    streamed = await post(rows)
    await app_runner(api).wait(streamed["id"], 10)
    slow = await post({"name": f"{TASKS}.slow_async", "task_publish_id": None})
    await post({"name": f"{TASKS}.multiply", "arguments": {"a": "six"}})  # 400 bad_arguments
    await post({"name": f"{TASKS}.multiply", "extra": 1})  # 400 unknown field
    await post({"name": "no.such.task"})  # 404
    busy = {"name": f"{TASKS}.count_rows", "arguments": {"rows": 500, "delay": 0.05}}
    first = await post({**busy, "task_publish_id": "b1"})
    assert (await post({**busy, "task_publish_id": "b1"}))["running"] == first["id"]  # 409
    await post({"name": "greet", "arguments": {"name": "x" * 300_000}})  # 413

    page = await check(await api.get("/api/tasks", params={"limit": "2"}), *listing)
    assert page["limit"] == 2 and len(page["tasks"]) == 2
    await check(await api.get("/api/tasks", params={"limit": "0"}), *listing)  # 400
    record = await check(await api.get(f"/api/tasks/{done['id']}"), *one)
    assert record["result"] == 12
    await check(await api.get("/api/tasks/nope"), *one)  # 404
    stream = await check(await api.get(f"/api/tasks/{streamed['id']}/events"), *events)
    assert stream["finished"] is True and stream["events"]
    await check(await api.get(f"/api/tasks/{done['id']}/events?after=-1"), *events)  # 400
    await check(await api.get("/api/tasks/nope/events"), *events)  # 404
    for task in (slow, first):
        await check(await api.post(f"/api/tasks/{task['id']}/cancel"), *cancel)
    ended = await check(await api.post(f"/api/tasks/{done['id']}/cancel"), *cancel)  # 409
    assert ended["task_status"] == "success"
    await check(await api.post("/api/tasks/nope/cancel"), *cancel)  # 404

    await app_runner(api).close(grace=0)
    await post({"name": "greet", "arguments": {"name": "x"}})  # 503
    conformance.assert_covered(start, listing, one, cancel, events, registry)


async def test_health_answers_as_documented(
    api: Client, conformance: Conformance, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = ("get", "/api/health")
    assert (await conformance.check(await api.get("/api/health"), *health))["status"] == "ok"
    monkeypatch.setattr(Store, "file_problem", property(lambda store: "deleted: all is lost"))
    lost = await conformance.check(await api.get("/api/health"), *health)
    assert lost["status"] == "store_lost"
    conformance.assert_covered(health)


async def test_schedule_operations_answer_as_documented(
    api: Client, conformance: Conformance
) -> None:
    check = conformance.check
    listing, one = ("get", "/api/schedules"), ("get", "/api/schedules/{name}")
    act, delete = ("post", "/api/schedules/{name}/{action}"), ("delete", "/api/schedules/{name}")
    scheduler = api.app[SCHEDULER]
    key = uuid.uuid4().hex
    sample_tasks.HOLDS[key] = asyncio.Event()
    scheduler.schedule("tests.support.sample_tasks.hold", key, name="held", rule=daily(at="3:00"))

    assert len((await check(await api.get("/api/schedules"), *listing))["schedules"]) == 1
    await check(await api.get("/api/schedules/held"), *one)
    await check(await api.get("/api/schedules/nope"), *one)  # 404
    assert (await check(await api.post("/api/schedules/held/pause"), *act))["paused"] is True
    await check(await api.post("/api/schedules/held/resume"), *act)
    run = await check(await api.post("/api/schedules/held/run"), *act)  # 202
    assert (await check(await api.post("/api/schedules/held/run"), *act))["error"] == "busy"
    rows = {"rows": 500, "delay": 0.05}
    scheduler.schedule(
        f"{TASKS}.count_rows", name="rows", rule=daily(at="3:00"), task_publish_id="s", **rows
    )
    blocking = {"name": f"{TASKS}.count_rows", "arguments": rows, "task_publish_id": "s"}
    running = await (await api.post("/api/tasks", json=blocking)).json()
    in_use = await check(await api.post("/api/schedules/rows/run"), *act)
    assert in_use["error"] == "stream_busy" and in_use["running"] == running["id"]
    await check(await api.post("/api/schedules/held/explode"), *act)  # 400
    await check(await api.post("/api/schedules/nope/run"), *act)  # 404
    sample_tasks.HOLDS[key].set()
    await app_runner(api).wait(run["id"], 10)
    await check(await api.delete("/api/schedules/nope"), *delete)  # 404
    await app_runner(api).close(grace=0)
    await check(await api.post("/api/schedules/held/run"), *act)  # 503
    assert (await check(await api.delete("/api/schedules/held"), *delete)) == {"deleted": "held"}
    conformance.assert_covered(listing, one, act, delete)


async def test_the_feed_and_the_document_answer_as_documented(
    api: Client, conformance: Conformance
) -> None:
    feed, spec = ("get", "/api/feed"), ("get", "/api/openapi.json")
    ws = await api.ws_connect("/api/feed")  # 101: the upgrade succeeded
    conformance.seen[feed].add("101")
    started = await api.post("/api/tasks", json={"name": "greet", "arguments": {"name": "x"}})
    task_id = (await started.json())["id"]
    async with asyncio.timeout(10):  # frames until the task's last change
        while True:
            frame = await ws.receive_json()
            for summary in frame["tasks"]:  # each is a TaskSummary, as the document says
                conformance.validate(["components", "schemas", "TaskSummary"], summary)
            if any(t["id"] == task_id and t["status"] == "success" for t in frame["tasks"]):
                break
    await ws.close()
    await conformance.check(await api.get("/api/feed"), *feed)  # 400: not an upgrade
    await conformance.check(await api.get("/api/feed", headers=EVIL), *feed)  # 403
    await conformance.check(await api.get("/api/openapi.json"), *spec)
    conformance.assert_covered(feed, spec)


async def test_activity_answers_as_documented(api: Client, conformance: Conformance) -> None:
    path = ("get", "/api/activity")
    started = await api.post("/api/tasks", json={"name": "greet", "arguments": {"name": "x"}})
    task_id = (await started.json())["id"]
    body = await conformance.check(await api.get(f"/api/activity?id={task_id}&id=x"), *path)
    assert set(body) == {"running", "queued", "waiting", "progress"}
    await conformance.check(await api.get("/api/activity?" + "&".join(["id=x"] * 101)), *path)
    conformance.assert_covered(path)


def test_every_operation_is_exercised_by_a_test_above() -> None:
    exercised = {
        ("post", "/api/tasks"),
        ("get", "/api/tasks"),
        ("get", "/api/tasks/{id}"),
        ("post", "/api/tasks/{id}/cancel"),
        ("get", "/api/tasks/{id}/events"),
        ("get", "/api/registry"),
        ("get", "/api/health"),
        ("get", "/api/activity"),
        ("get", "/api/schedules"),
        ("get", "/api/schedules/{name}"),
        ("post", "/api/schedules/{name}/{action}"),
        ("delete", "/api/schedules/{name}"),
        ("get", "/api/feed"),
        ("get", "/api/openapi.json"),
    }
    missing = operations(document("", token_auth=False)) - exercised
    assert not missing, f"add a conformance test for {sorted(missing)}"

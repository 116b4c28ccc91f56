"""Fuzzing every parameter of every route, pages and API alike, with the alphabets that once
reached a 500: Unicode digits, full-width digits, raw bytes, lone surrogates, huge integers.
Whatever a client sends, the answer is below 500 and nothing is logged as an error."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ClientFactory
from tests.web.test_hostile_input import raw_request

Client = TestClient[Any, Any]
TASKS = "tests.support.console_tasks"
TOKEN = "s3cret-token"

#: every route by name: (method, path, its query or form parameters). A route added to
#: routes.py fails `test_every_route_is_fuzzed` until it is listed here.
ROUTES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "index": (
        "GET",
        "/",
        ("status", "group", "func", "page", "q", "sort", "dir", "cancelled", "skipped", "purged"),
    ),
    "bulk_cancel": ("POST", "/tasks/cancel", ("id",)),
    "stats": ("GET", "/stats", ("window",)),
    "purge_form": ("GET", "/purge", ("older",)),
    "purge": ("POST", "/purge", ("older", "confirm")),
    "task": ("GET", "/tasks/{}", ()),
    "cancel": ("POST", "/tasks/{}/cancel", ()),
    "run_again": ("POST", "/tasks/{}/again", ()),
    "task_output": ("GET", "/tasks/{}/output.txt", ()),
    "task_result": ("GET", "/tasks/{}/result.json", ()),
    "task_traceback": ("GET", "/tasks/{}/traceback.txt", ()),
    "registry": ("GET", "/registry", ()),
    "start_form": ("GET", "/start/{}", ()),
    "start": ("POST", f"/start/{TASKS}.multiply", ("a", "b", "task_publish_id", "__more__")),
    "schedules": ("GET", "/schedules", ("notice", "started", "schedule")),
    "schedule_delete": ("GET", "/schedules/{}/delete", ()),
    "schedule_action": ("POST", "/schedules/{}/{}", ()),
    "login_form": ("GET", "/login", ("next",)),
    "login": ("POST", "/login", ("token", "next")),
    "logout": ("POST", "/logout", ()),
    "demo": ("GET", "/demo", ()),
    "demo_start": ("POST", "/demo/start", ("task", "task_publish_id")),
    "demo_watch": ("GET", "/demo/watch", ("stream",)),
    "demo_frames": ("GET", "/demo/frames", ("stream",)),
    "demo_tour": ("GET", "/demo/tour", ()),
    "api_start": ("POST", "/api/tasks", ()),  # its JSON bodies: test_api_fuzz.py
    "api_tasks": (
        "GET",
        "/api/tasks",
        ("limit", "offset", "status", "group", "func", "started_by"),
    ),
    "api_task": ("GET", "/api/tasks/{}", ()),
    "api_cancel": ("POST", "/api/tasks/{}/cancel", ()),
    "api_events": ("GET", "/api/tasks/{}/events", ("after", "limit")),
    "api_registry": ("GET", "/api/registry", ()),
    "api_health": ("GET", "/api/health", ()),
    "api_activity": ("GET", "/api/activity", ("id",)),
    "api_schedules": ("GET", "/api/schedules", ()),
    "api_schedule": ("GET", "/api/schedules/{}", ()),
    "api_schedule_run": ("POST", "/api/schedules/{}/{}", ()),
    "api_schedule_delete": ("DELETE", "/api/schedules/{}", ()),
    "api_openapi": ("GET", "/api/openapi.json", ()),
    "feed": ("GET", "/api/feed", ()),
    "static": ("GET", "/static/{}", ()),
    "taskcast_channel": ("GET", "/schtasks/show_task_events/channel/", ()),
}

FUZZ = settings(
    database=None,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: values that look like numbers to Python and are not ours to take, and other trouble
HOSTILE = [
    "\u00b2",
    "\u00b9",
    "\u0661",
    "\uff11\uff12",
    "\u07c1",
    "\ud800",
    "\udcff",
    "\x00",
    "\ufffd",
    "9" * 30,
    "9" * 400,
    "-1",
    "0",
    "",
    " 1",
    "1e3",
    "/\t/evil.example",
    "../..",
    "%",
]
#: a value as bytes: text (surrogates kept as their UTF-8-ish bytes) or raw bytes
values = st.one_of(
    st.sampled_from(HOSTILE).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=20),
    st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: str(n).encode()),
)


@pytest.fixture
async def server(make_client: ClientFactory) -> Client:
    client: Client = await make_client(task_modules=[TASKS], max_body_bytes=64 * 1024)
    return client


def test_every_route_is_fuzzed(server: Client) -> None:
    named = {route.name for route in server.app.router.routes() if route.name}
    assert named == set(ROUTES)


def encoded(value: bytes) -> str:
    return quote_from_bytes(value, safe="")


def parser_refusal(record: logging.LogRecord) -> bool:
    """aiohttp's own 400 for bytes HTTP does not allow (a NUL in a header): it logs those
    itself, before any of our code runs."""
    exc = record.exc_info[1] if record.exc_info else None
    return record.name == "aiohttp.server" and isinstance(exc, HttpProcessingError)


async def no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and not parser_refusal(r)]
    caplog.clear()
    assert not errors, [r.getMessage() for r in errors]


async def send(
    client: Client, method: str, pattern: str, path_values: list[bytes], fields: dict[str, bytes]
) -> tuple[int, bytes, str]:
    """One request with the values as raw bytes: in the path, the query or a form body."""
    path = pattern.format(*(encoded(v) or "x" for v in path_values))
    body = "&".join(f"{k}={encoded(v)}" for k, v in fields.items()).encode()
    head = f"{method} {path}".encode()
    if method == "GET" and body:
        head += b"?" + body
        body = b""
    head += f" HTTP/1.1\r\nHost: 127.0.0.1:{client.port}".encode()
    if body:
        head += b"\r\nContent-Type: application/x-www-form-urlencoded"
        head += f"\r\nContent-Length: {len(body)}".encode()
    status, answer = await raw_request(client, head, body)
    return status, answer, path


async def test_every_parameter_of_every_route_with_every_hostile_value(
    server: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    for name, (method, pattern, parameters) in sorted(ROUTES.items()):
        slots = pattern.count("{}")
        for value in HOSTILE:
            raw = value.encode("utf-8", "surrogatepass")
            cases: list[tuple[list[bytes], dict[str, bytes]]] = [([raw] * slots, {})]
            cases += [([b"x"] * slots, {parameter: raw}) for parameter in parameters]
            for path_values, fields in cases:
                status, answer, path = await send(server, method, pattern, path_values, fields)
                assert status < 500, (name, path, fields, answer[:300])
                await no_error_logged(caplog)


@FUZZ
@given(name=st.sampled_from(sorted(ROUTES)), data=st.data())
async def test_any_parameter_of_any_route_gets_an_answer_below_500(
    server: Client, caplog: pytest.LogCaptureFixture, name: str, data: st.DataObject
) -> None:
    caplog.set_level(logging.ERROR)
    method, pattern, parameters = ROUTES[name]
    path_values = [data.draw(values) for _ in range(pattern.count("{}"))]
    fields = {p: data.draw(values) for p in parameters if data.draw(st.booleans())}
    status, answer, path = await send(server, method, pattern, path_values, fields)
    assert status < 500, (method, path, fields, answer[:300])
    await no_error_logged(caplog)


@pytest.fixture
async def guarded(make_client: ClientFactory) -> Client:
    client: Client = await make_client(task_modules=[TASKS], auth_token=TOKEN)
    return client


header_values = st.one_of(
    st.sampled_from(HOSTILE).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)


@FUZZ
@given(
    header=st.sampled_from(
        ["Authorization: Bearer ", "Authorization: ", "Cookie: taskcast_session=", "Host: "]
    ),
    value=header_values,
    path=st.sampled_from(["/api/tasks", "/", "/schtasks/show_task_events/channel/", "/login"]),
)
async def test_any_credential_or_host_gets_an_answer_below_500(
    guarded: Client, caplog: pytest.LogCaptureFixture, header: str, value: bytes, path: str
) -> None:
    caplog.set_level(logging.ERROR)
    host = b"" if header == "Host: " else f"Host: 127.0.0.1:{guarded.port}\r\n".encode()
    head = f"GET {path} HTTP/1.1\r\n".encode() + host + header.encode() + value
    status, answer = await raw_request(guarded, head)
    assert status < 500, (path, header, value, answer[:300])
    if header != "Host: ":
        assert status in (200, 303, 400, 401), (path, header, value, answer[:300])
    await no_error_logged(caplog)
    await asyncio.sleep(0)

"""Fuzzing the JSON API: whatever a client sends, the answer is JSON, never a 500, and the
server goes on serving. Client mistakes get a 4xx with `error` and `detail`."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ClientFactory

Client = TestClient[Any, Any]
# A failing example of several 64 KiB strings would be reported with a repr of that size.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
TASKS = "tests.support.console_tasks"

FUZZ = settings(
    database=None,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

short_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "\ud800", "\U0001f600" * 20, "é" * 100, "<script>", "../../"]),
    # numbers to str.isdigit or int(), and not to us: superscripts, Arabic-Indic, full-width
    st.sampled_from(["\u00b2", "\u00b9", "\u0661", "\uff11\uff12", "9" * 30, "-0", "1e3"]),
)
#: with strings over the 64 KiB an argument may hold (and bodies over the 64 KiB test limit)
edge_text = st.one_of(
    short_text, st.integers(min_value=60_000, max_value=70_000).map(lambda n: "x" * n)
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | edge_text,
    # Keys stay short: big strings as keys too made some bodies a megabyte, slow to send.
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text, inner, max_size=4),
    max_leaves=12,
)
start_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(
                json_values, st.sampled_from([f"{TASKS}.multiply", "greet", "os.system"])
            ),
            "arguments": st.one_of(
                json_values, st.dictionaries(st.sampled_from(["a", "b", "name", "x"]), json_values)
            ),
            "task_publish_id": json_values,
        },
    ),
)


@pytest.fixture
async def api(make_client: ClientFactory) -> Client:
    client: Client = await make_client(task_modules=[TASKS], max_body_bytes=64 * 1024)
    return client


async def assert_json_answer(response: Any) -> int:
    status: int = response.status
    assert status < 500, await response.text()
    body = await response.json()
    if status >= 400:
        assert set(body) >= {"error", "detail"} and isinstance(body["detail"], str)
    return status


@FUZZ
@given(body=start_bodies)
async def test_any_start_body_gets_a_json_answer(
    api: Client, caplog: pytest.LogCaptureFixture, body: Any
) -> None:
    caplog.set_level(logging.ERROR)
    try:
        data = json.dumps(body)
    except (ValueError, UnicodeEncodeError):
        return
    response = await api.post(
        "/api/tasks",
        # As a stream: aiohttp's client warns about raw bodies over 1 MiB, which some are.
        data=io.BytesIO(data.encode("utf-8", "surrogatepass")),
        headers={"Content-Type": "application/json"},
    )
    status = await assert_json_answer(response)
    assert status in (201, 400, 404, 409, 413)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (await api.get("/api/health")).status == 200


@FUZZ
@given(
    raw=st.binary(max_size=300),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
)
async def test_any_raw_body_gets_a_json_answer(api: Client, raw: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await api.post("/api/tasks", data=raw, headers=headers)
    assert await assert_json_answer(response) in (201, 400, 404, 409, 413)


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["status", "group", "func", "started_by", "limit", "offset", "after", "x"]),
        short_text,
        max_size=4,
    )
)
async def test_any_query_gets_a_json_answer(api: Client, query: dict[str, str]) -> None:
    safe = {
        key: value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        for key, value in query.items()
    }
    for path in ("/api/tasks", "/api/tasks/nope/events", "/api/registry", "/api/health"):
        response = await api.get(path, params=safe)
        assert await assert_json_answer(response) in (200, 400, 404)


@FUZZ
@given(task_id=short_text)
async def test_any_task_id_gets_a_json_answer(api: Client, task_id: str) -> None:
    clean = task_id.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    quoted = "".join(c if c.isalnum() else f"%{ord(c) & 0xFF:02X}" for c in clean[:200]) or "x"
    for method, path in (
        ("GET", f"/api/tasks/{quoted}"),
        ("POST", f"/api/tasks/{quoted}/cancel"),
        ("GET", f"/api/tasks/{quoted}/events"),
    ):
        response = await api.request(method, path)
        # "." and ".." are path segments: the URL is normalised onto another route.
        dots = (405,) if quoted in ("%2E", "%2E%2E") else ()
        assert await assert_json_answer(response) in (200, 404, 409, *dots)

"""Hostile input from clients that are not signed in, or are: a clear 400 or 401, never a 500.

Each case here was once a 500 with a traceback in the log (or a number silently accepted)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from taskcast import tasks
from tests.conftest import ClientFactory

Client = TestClient[Any, Any]
TOKEN = "s3cret-token"


async def raw_request(client: Client, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes as they are (aiohttp's client would encode or refuse them); the status and body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head + b"\r\nConnection: close\r\n\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def host_of(client: Client) -> bytes:
    return f"Host: 127.0.0.1:{client.port}".encode()


@pytest.fixture
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.ERROR)
    yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize(
    "path",
    [
        "/api/tasks?limit=%C2%B2",
        "/api/tasks?offset=%C2%B2",
        "/api/tasks?limit=%EF%BC%91%EF%BC%92",  # full-width one and two
        "/api/tasks?limit=%D9%A1",  # Arabic-Indic one
        "/api/tasks?offset=99999999999999999999",
        "/?page=%C2%B2",
        "/?page=%EF%BC%92",
        "/?page=99999999999999999999",
    ],
)
async def test_numbers_that_are_not_ascii_digits_are_400(
    make_client: ClientFactory, path: str
) -> None:
    client = await make_client()
    response = await client.get(path)
    assert response.status == 400, await response.text()
    text = await response.text()
    assert "must be a whole number from" in text


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize("query", ["after=%C2%B9", "limit=%EF%BC%91", "after=99999999999999999999"])
async def test_event_paging_numbers_that_are_not_ascii_digits_are_400(
    make_client: ClientFactory, query: str
) -> None:
    client = await make_client()
    task_id = tasks.async_task("tests.support.sample_tasks.async_identity", 1)
    await tasks.wait_task(task_id, timeout=10)
    response = await client.get(f"/api/tasks/{task_id}/events?{query}")
    assert response.status == 400, await response.text()
    assert "must be a whole number from" in (await response.json())["detail"]


@pytest.mark.usefixtures("no_errors_logged")
@pytest.mark.parametrize(
    "line",
    [
        b"Authorization: Bearer \xc3\xa9t\xc3\xa9-token",
        b"Authorization: Bearer \xff\xfe",
        b"Cookie: taskcast_session=\xc3\xa9",
        b"Cookie: taskcast_session=\xff|1|\xfe",
    ],
)
async def test_non_ascii_credentials_are_401(make_client: ClientFactory, line: bytes) -> None:
    client = await make_client(auth_token=TOKEN)
    status, body = await raw_request(
        client, b"GET /api/tasks HTTP/1.1\r\n" + host_of(client) + b"\r\n" + line
    )
    assert status == 401, body
    assert b"unauthorized" in body


@pytest.mark.usefixtures("no_errors_logged")
async def test_a_login_form_that_is_not_utf8_is_400(make_client: ClientFactory) -> None:
    client = await make_client(auth_token=TOKEN)
    form = b"token=\xff\xfe&next=/"
    head = (
        b"POST /login HTTP/1.1\r\n" + host_of(client) + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {len(form)}".encode()
    )
    status, body = await raw_request(client, head, form)
    assert status == 400, body
    assert b"the form could not be read" in body

"""The console pages: task page, cancel, sign-in and cross-site refusal (the list: test_task_list.py;
the start forms: test_start_forms.py)."""

from __future__ import annotations

import aiohttp
import pytest

from taskcast import tasks
from tests.conftest import ClientFactory, app_runner
from tests.support.pages import Client, text_of
from tests.support.wsclient import CHANNEL

TASKS = "tests.support.console_tasks"


@pytest.fixture
async def console(make_client: ClientFactory) -> Client:
    client: Client = await make_client(task_modules=[TASKS])
    return client


async def test_user_text_is_escaped_everywhere(console: Client) -> None:
    task_id = tasks.async_task(
        "tests.support.sample_tasks.async_identity",
        "<img src=x onerror=alert(1)>",
        task_name="<b>bold</b>",
    )
    await tasks.wait_task(task_id, timeout=10)
    for path in ("/", f"/tasks/{task_id}", "/?group=<script>alert(1)</script>"):
        body = await text_of(console, path)
        assert "<img src=x" not in body and "<b>bold</b>" not in body
        assert "<script>alert(1)" not in body
    assert "&lt;b&gt;bold&lt;/b&gt;" in await text_of(console, f"/tasks/{task_id}")


async def test_task_page_shows_result_error_and_cancel(console: Client) -> None:
    ok = tasks.async_task(f"{TASKS}.multiply", 3, b=4)
    bad = tasks.async_task("tests.support.sample_tasks.async_fail", "went wrong")
    slow = tasks.async_task(f"{TASKS}.slow_async")
    for task_id in (ok, bad):
        await tasks.wait_task(task_id, timeout=10)
    ok_page = await text_of(console, f"/tasks/{ok}")
    assert '<pre class="result">12</pre>' in ok_page and '/cancel"' not in ok_page
    bad_page = await text_of(console, f"/tasks/{bad}")
    assert "Traceback" in bad_page and "ValueError: went wrong" in bad_page
    slow_page = await text_of(console, f"/tasks/{slow}")
    assert f'action="/tasks/{slow}/cancel"' in slow_page
    response = await console.post(f"/tasks/{slow}/cancel", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/tasks/{slow}"
    assert (await tasks.wait_task(slow, timeout=10)).status.value == "cancelled"
    await text_of(console, "/tasks/" + "0" * 32, 404)


async def test_task_page_has_the_live_output_element(console: Client) -> None:
    task_id = tasks.async_task(f"{TASKS}.count_rows", rows=2, task_publish_id="page")
    await tasks.wait_task(task_id, timeout=10)
    body = await text_of(console, f"/tasks/{task_id}")
    assert 'task_id="rows__page"' in body and f'websocket_href="{CHANNEL}"' in body


async def test_sign_in_guards_pages_api_and_channel(make_client: ClientFactory) -> None:
    client = await make_client(task_modules=[TASKS], auth_token="s3cret-token")
    response = await client.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login?next=/"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(CHANNEL)
    assert refused.value.status == 401
    wrong = await client.post("/login", data={"token": "nope", "next": "/registry"})
    assert wrong.status == 401 and "not right" in await wrong.text()
    signed = await client.post(
        "/login", data={"token": "s3cret-token", "next": "/registry"}, allow_redirects=False
    )
    assert signed.status == 303 and signed.headers["Location"] == "/registry"
    assert "taskcast_session" in signed.cookies
    assert (await client.get("/")).status == 200
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"ping": 1})
    assert (await ws.receive_json()) == {"status": "pong"}
    await ws.close()
    out = await client.post("/logout", allow_redirects=False)
    assert out.status == 303
    assert (await client.get("/", allow_redirects=False)).status == 303


async def test_login_never_redirects_to_another_site(make_client: ClientFactory) -> None:
    client = await make_client(auth_token="s3cret-token")
    for target in ("https://evil.example/", "//evil.example/x"):
        signed = await client.post(
            "/login", data={"token": "s3cret-token", "next": target}, allow_redirects=False
        )
        assert signed.headers["Location"] == "/"


async def test_cross_site_page_posts_and_sockets_are_refused(console: Client) -> None:
    slow = tasks.async_task(f"{TASKS}.slow_async")
    evil = {"Origin": "http://evil.example"}
    refused = await console.post(f"/tasks/{slow}/cancel", headers=evil)
    assert refused.status == 403
    assert (
        await console.post(f"/start/{TASKS}.multiply", data={"a": "1"}, headers=evil)
    ).status == 403
    for path in (CHANNEL, "/api/feed"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as denied:
            await console.ws_connect(path, headers=evil)
        assert denied.value.status == 403
    assert app_runner(console).cancel(slow) is True

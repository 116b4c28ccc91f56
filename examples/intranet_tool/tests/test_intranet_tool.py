"""The CSV importer's own tests: its pages, its users, and a browser watching an import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import async_playwright

from examples.intranet_tool.app import make_app
from taskcast.records import TaskStatus
from taskcast.web.embed import TASKCAST
from tests.support.chromium import CHROMIUM_ARGS, require_chromium

CSV = "ann,ann@example.org\nbob,not-an-email\ncid,cid@example.org\n"
Client = TestClient[Any, Any]


@pytest.fixture
async def tool(aiohttp_client: Any, tmp_path: Path) -> Client:
    client: Client = await aiohttp_client(
        make_app(database=str(tmp_path / "tool.sqlite3"), process_workers=1)
    )
    return client


async def sign_in(client: Client, name: str) -> None:
    response = await client.post("/login", data={"name": name}, allow_redirects=False)
    assert response.status == 303


async def test_pages_need_a_user(tool: Client) -> None:
    response = await tool.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert (await tool.get("/taskcast/api/tasks")).status == 401


async def test_an_import_runs_in_the_pool_and_reports_each_row(tool: Client) -> None:
    await sign_in(tool, "ann")
    response = await tool.post("/imports", data={"csv": CSV}, allow_redirects=False)
    assert response.status == 303
    job_id = response.headers["Location"].removeprefix("/imports/")
    record = await tool.app[TASKCAST].runner.wait(job_id, 20)
    assert record.status is TaskStatus.SUCCESS and record.kind == "process"
    assert record.result == {"imported": 2, "rejected": 1} and record.started_by == "ann"
    page = await (await tool.get(f"/imports/{job_id}")).text()
    assert f'task_id="{record.stream_id}"' in page
    events = await (await tool.get(f"/taskcast/api/tasks/{job_id}/events")).json()
    rows = [e["data"] for e in events["events"] if "row " in e["data"] and "<li" in e["data"]]
    assert rows == [
        "<li class='ok'>row 1: ann imported</li>===>>.data",
        "<li class='bad'>row 2: rejected (bob,not-an-email)</li>===>>.data",
        "<li class='ok'>row 3: cid imported</li>===>>.data",
    ]


async def test_people_see_only_their_own_imports(tool: Client) -> None:
    await sign_in(tool, "ann")
    response = await tool.post("/imports", data={"csv": CSV}, allow_redirects=False)
    job_id = response.headers["Location"].removeprefix("/imports/")
    await sign_in(tool, "bob")
    assert (await tool.get(f"/imports/{job_id}")).status == 404
    assert (await tool.get(f"/taskcast/api/tasks/{job_id}")).status == 404
    await sign_in(tool, "admin")
    assert (await tool.get(f"/taskcast/api/tasks/{job_id}")).status == 200


@pytest.fixture
def chromium() -> Path:
    return require_chromium()


@pytest_asyncio.fixture
async def live_tool(tmp_path: Path) -> AsyncIterator[TestServer]:
    server = TestServer(
        make_app(database=str(tmp_path / "live.sqlite3"), process_workers=1), host="127.0.0.1"
    )
    await server.start_server()
    yield server
    await server.close()


@pytest.mark.browser
async def test_a_browser_watches_the_rows_arrive(live_tool: TestServer, chromium: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        page = await browser.new_page(base_url=str(live_tool.make_url("/")))
        await page.goto("/login")
        await page.fill("input[name=name]", "ann")
        await page.click("button")
        await page.fill("textarea[name=csv]", CSV * 4)
        await page.click("button")
        await page.wait_for_url("**/imports/*")
        await page.wait_for_function(
            "document.querySelectorAll('ptig-task .data li').length >= 2", timeout=10_000
        )
        assert await page.locator("ptig-task .ptig-progress progress").count() == 1
        await page.wait_for_selector("ptig-task[finished]", state="attached", timeout=20_000)
        assert await page.locator("ptig-task .data li.ok").count() == 8
        assert await page.locator("ptig-task .data li.bad").count() == 4
        assert await page.is_visible("[name=task_end_info]")
        await browser.close()

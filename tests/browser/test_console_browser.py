"""The console in Debian's chromium: start from a form, watch output and progress, cancel live."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext

from tests.browser.harness import serve_taskcast

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

TASKS = "tests.support.console_tasks"
WAIT_MS = 10_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestServer]:
    folder = tmp_path_factory.mktemp("console")
    async with serve_taskcast(folder, process_workers=1, task_modules=[TASKS]) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser, console_server: TestServer) -> AsyncIterator[BrowserContext]:
    made = await browser.new_context(base_url=str(console_server.make_url("/")))
    errors: list[Exception] = []
    made.on("weberror", lambda error: errors.append(error.error))
    yield made
    await made.close()
    assert errors == [], "a page raised uncaught errors"


async def test_start_from_the_form_and_watch_output_and_progress(context: BrowserContext) -> None:
    page = await context.new_page()
    await page.goto(f"/start/{TASKS}.count_rows")
    await page.fill("input[name=rows]", "20")
    await page.fill("input[name=delay]", "0.1")
    await page.fill("input[name=task_publish_id]", "form1")
    await page.click("form.start button")
    await page.wait_for_url("**/tasks/*", timeout=WAIT_MS)
    # output and progress arrive while the task runs
    await page.wait_for_function(
        "document.querySelectorAll('ptig-task .data li').length >= 3", timeout=WAIT_MS
    )
    status = "#task-detail [data-field=status] .pill"
    assert await page.get_attribute(status, "data-status") == "running"
    progress = page.locator("ptig-task .ptig-progress progress")
    early = float(await progress.get_attribute("value") or 0)
    assert 0 < early < 20
    assert "%" in (await page.text_content("ptig-task .ptig-progress-text") or "")
    await page.wait_for_selector("ptig-task[finished]", state="attached", timeout=WAIT_MS)
    assert await page.locator("ptig-task .data li").count() == 20
    assert await progress.get_attribute("value") == "20"
    assert (await page.text_content("ptig-task .ptig-progress-text") or "").startswith("100%")
    # the status changes on the page without a reload, and the result appears
    await page.wait_for_selector(f"{status}[data-status=success]", timeout=WAIT_MS)
    assert await page.text_content("#task-detail pre.result") == "20"


async def test_cancel_shows_in_the_list_without_a_reload(context: BrowserContext) -> None:
    listing = await context.new_page()
    await listing.goto("/")
    await listing.evaluate("window.__sameDocument = true")
    await listing.wait_for_function("document.body.dataset.live === 'on'", timeout=WAIT_MS)
    starter = await context.new_page()
    await starter.goto(f"/start/{TASKS}.slow_async")
    await starter.click("form.start button")
    await starter.wait_for_url("**/tasks/*", timeout=WAIT_MS)
    task_id = starter.url.rsplit("/", 1)[1]
    row = f"tr[data-task-id='{task_id}'] [data-field=status] .pill"
    # the new task appears in the open list, running
    await listing.wait_for_function(
        f"document.querySelector(\"{row}\")?.dataset.status === 'running'", timeout=WAIT_MS
    )
    await starter.click("#cancel-form button")
    await listing.wait_for_function(
        f"document.querySelector(\"{row}\")?.dataset.status === 'cancelled'", timeout=WAIT_MS
    )
    assert await listing.evaluate("window.__sameDocument") is True
    assert "Cancelled" in (await listing.text_content(row) or "")

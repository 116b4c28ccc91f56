"""The task list in Debian's chromium, at desktop (1280x800) and phone (390x844) sizes, with
JavaScript on and off and in dark mode: live counters and rows, progress on a running row,
search, sort, bulk cancel and purge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page

from taskcast.records import TaskRecord, TaskStatus
from taskcast.runtime.runner import Runner
from taskcast.web.keys import CORE
from tests.browser.harness import serve_taskcast

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

TASKS = "tests.support.console_tasks"
WAIT_MS = 10_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def list_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestServer]:
    folder = tmp_path_factory.mktemp("task-list")
    # one task at a time, so the others wait in the queue
    async with serve_taskcast(
        folder, process_workers=1, max_concurrency=1, task_modules=[TASKS]
    ) as server:
        yield server


def page_errors(message: ConsoleMessage) -> list[str]:
    """A console error as text; the browser's own request for /favicon.ico is the site's
    business, not the list's."""
    if message.type != "error" or message.location.get("url", "").endswith("/favicon.ico"):
        return []
    return [f"{message.text} at {message.location.get('url')}"]


def runner_of(server: TestServer) -> Runner:
    return server.app[CORE].runner


@pytest_asyncio.fixture(loop_scope="module")
async def make_context(browser: Browser, list_server: TestServer) -> AsyncIterator[Any]:
    """Browser contexts on the list server; none may log an error or raise one, and every task
    a test left unfinished is cancelled afterwards."""
    made: list[BrowserContext] = []
    errors: list[str] = []

    async def make(**options: Any) -> BrowserContext:
        context = await browser.new_context(
            base_url=str(list_server.make_url("/")), **{"viewport": DESKTOP, **options}
        )
        context.on("weberror", lambda error: errors.append(str(error.error)))
        context.on("console", lambda message: errors.extend(page_errors(message)))
        made.append(context)
        return context

    yield make
    for context in made:
        await context.close()
    runner = runner_of(list_server)
    for record in runner.active_records():
        runner.cancel(record.id)
    assert errors == [], "a page logged or raised errors"


async def start(page: Page, name: str, publish_id: str | None = None, **arguments: Any) -> str:
    body = {"name": f"{TASKS}.{name}", "arguments": arguments, "task_publish_id": publish_id}
    response = await page.request.post("/api/tasks", data=body)
    assert response.status == 201, await response.text()
    task_id: str = (await response.json())["id"]
    return task_id


def pill(task_id: str) -> str:
    return f"tr[data-task-id='{task_id}'] [data-field=status] .pill"


async def wait_status(page: Page, task_id: str, status: str) -> None:
    await page.wait_for_function(
        "([selector, status]) => document.querySelector(selector)?.dataset.status === status",
        arg=[pill(task_id), status],
        timeout=WAIT_MS,
    )


async def test_counters_and_rows_change_live(make_context: Any, list_server: TestServer) -> None:
    page = await (await make_context()).new_page()
    await page.goto("/")
    await page.evaluate("window.__sameDocument = true")
    await page.wait_for_function("document.body.dataset.live === 'on'", timeout=WAIT_MS)
    slow = await start(page, "slow_async")
    waiting = await start(page, "multiply", a=6)
    await wait_status(page, slow, "running")
    await wait_status(page, waiting, "queued")
    await page.wait_for_function(
        "document.getElementById('running').textContent === '1'"
        " && document.getElementById('queued').textContent === '1'",
        timeout=WAIT_MS,
    )
    # why the queued task waits, once the page has asked
    await page.wait_for_selector("#waiting:not([hidden])", timeout=WAIT_MS)
    assert "max_concurrency" in (await page.text_content("#waiting") or "")
    # a new queued row can be ticked, and the button works; a running row cannot be ticked
    assert await page.locator(f"tr[data-task-id='{waiting}'] input[type=checkbox]").count() == 1
    assert await page.locator(f"tr[data-task-id='{slow}'] input[type=checkbox]").count() == 0
    assert await page.is_enabled("#bulk-cancel")
    runner_of(list_server).cancel(slow)
    await wait_status(page, slow, "cancelled")
    await wait_status(page, waiting, "success")
    await page.wait_for_function(
        "document.getElementById('running').textContent === '0'"
        " && document.getElementById('queued').textContent === '0'",
        timeout=WAIT_MS,
    )
    assert await page.is_hidden("#waiting")
    assert await page.locator(f"tr[data-task-id='{waiting}'] input[type=checkbox]").count() == 0
    assert await page.is_disabled("#bulk-cancel")
    assert "Cancelled" in (await page.text_content(pill(slow)) or "")
    # times are <time datetime> in relative words, the absolute time on hover
    started = page.locator(f"tr[data-task-id='{slow}'] [data-field=started] time")
    assert await started.get_attribute("datetime")
    assert "ago" in (await started.text_content() or "") or "now" in (
        await started.text_content() or ""
    )
    assert await started.get_attribute("title")
    assert await page.evaluate("window.__sameDocument") is True


async def test_a_running_row_shows_named_progress(make_context: Any) -> None:
    page = await (await make_context()).new_page()
    await page.goto("/")
    await page.wait_for_function("document.body.dataset.live === 'on'", timeout=WAIT_MS)
    task_id = await start(page, "count_rows", rows=400, delay=0.05)
    bar = page.get_by_role("progressbar", name="Progress of")
    await bar.wait_for(timeout=WAIT_MS)
    await page.wait_for_function(
        "Number(document.querySelector('.row-progress progress')?.value) > 0", timeout=WAIT_MS
    )
    assert await bar.get_attribute("max") == "400"
    assert "%" in (await page.text_content(".row-progress-text") or "")
    # a reload renders the same progress on the server, without waiting for a poll
    await page.reload()
    assert float(await bar.get_attribute("value") or 0) > 0
    await page.request.post(f"/api/tasks/{task_id}/cancel")
    await wait_status(page, task_id, "cancelled")
    assert await page.locator(".row-progress").count() == 0


@pytest.mark.parametrize("javascript", [True, False])
async def test_search_and_sort_from_the_page(make_context: Any, javascript: bool) -> None:
    page = await (await make_context(java_script_enabled=javascript)).new_page()
    unique = 7654321 if javascript else 1234567  # the server lives for the module
    found = await start(page, "multiply", a=7, b=unique)
    other = await start(page, "multiply", a=1)
    await page.request.get(f"/api/tasks/{other}")  # both are stored before the search
    await page.goto("/")
    await page.get_by_role("searchbox", name="Search").fill(str(unique))
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url(f"**/?q={unique}**", timeout=WAIT_MS)
    assert await page.locator("tr[data-task-id]").count() == 1
    assert await page.locator(f"tr[data-task-id='{found}']").count() == 1
    await page.goto("/")
    await page.get_by_role("link", name="Task", exact=True).click()
    await page.wait_for_url("**/?sort=name&dir=asc", timeout=WAIT_MS)
    heading = page.locator("th.col-task")
    assert await heading.get_attribute("aria-sort") == "ascending"
    await heading.get_by_role("link", name="Task").click()  # the arrow is not read out
    await page.wait_for_url("**/?sort=name&dir=desc", timeout=WAIT_MS)
    assert await heading.get_attribute("aria-sort") == "descending"


@pytest.mark.parametrize("javascript", [True, False])
async def test_bulk_cancel_of_ticked_queued_tasks(make_context: Any, javascript: bool) -> None:
    page = await (await make_context(java_script_enabled=javascript)).new_page()
    running = await start(page, "slow_async")
    first = await start(page, "multiply", a=1)
    second = await start(page, "multiply", a=2)
    await page.goto("/")
    await page.locator(f"tr[data-task-id='{first}'] input[type=checkbox]").check()
    await page.locator(f"tr[data-task-id='{second}'] input[type=checkbox]").check()
    await page.get_by_role("button", name="Cancel the ticked queued tasks").click()
    await page.wait_for_url("**/?cancelled=2&skipped=0", timeout=WAIT_MS)
    assert "Cancelled 2 queued tasks." in (await page.text_content("main") or "")
    for task_id in (first, second):
        assert (await (await page.request.get(f"/api/tasks/{task_id}")).json())[
            "status"
        ] == "cancelled"
    assert (await (await page.request.get(f"/api/tasks/{running}")).json())["status"] == "running"


async def test_purge_asks_then_says_how_many_went(
    make_context: Any, list_server: TestServer
) -> None:
    store = runner_of(list_server).store
    stopped = datetime.now(UTC) - timedelta(days=30)
    for n in range(4):
        store.save_task(
            TaskRecord(
                id=f"old{n}",
                name="old",
                func="x.y",
                status=TaskStatus.SUCCESS,
                enqueued=stopped,
                started=stopped,
                stopped=stopped,
            )
        )
    page = await (await make_context(java_script_enabled=False)).new_page()
    await page.goto("/")
    await page.get_by_role("link", name="Purge old records").click()
    await page.get_by_role("link", name="30d").click()
    assert "4 finished task records" in (await page.text_content("#purge-count") or "")
    await page.get_by_role("button", name="Delete 4 records").click()
    await page.wait_for_url("**/?purged=4", timeout=WAIT_MS)
    assert "Purged 4 finished task records." in (await page.text_content("main") or "")
    assert store.get_task("old0") is None


async def test_statistics_page_from_the_list(make_context: Any) -> None:
    page = await (await make_context()).new_page()
    task_id = await start(page, "multiply", a=3)
    await page.request.get(f"/api/tasks/{task_id}")
    await page.goto("/")
    await page.get_by_role("link", name="Statistics per function").click()
    await page.wait_for_url("**/stats", timeout=WAIT_MS)
    row = page.locator(f"tr[data-func='{TASKS}.multiply']")
    await row.wait_for(timeout=WAIT_MS)
    assert int(await row.locator("[data-stat=runs]").text_content() or 0) >= 1
    await page.get_by_role("link", name="7d").click()
    await page.wait_for_url("**/stats?window=7d", timeout=WAIT_MS)


@pytest.mark.parametrize("path", ["/", "/?sort=name&dir=asc", "/stats", "/purge"])
async def test_phone_size_in_dark_mode_has_no_sideways_scroll(make_context: Any, path: str) -> None:
    context = await make_context(viewport=PHONE, color_scheme="dark")
    page = await context.new_page()
    long_stream = "a-very-long-stream-id-" * 3 + str(abs(hash(path)))
    await start(page, "count_rows", long_stream, rows=1)
    await page.goto(path)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{path} is {width} px wide"
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(255, 255, 255)", "dark mode keeps a light background"
    # the table fits too, rather than scrolling inside its box
    for box in await page.locator(".table-wrap").all():
        assert await box.evaluate("element => element.scrollWidth <= element.clientWidth")
    if path.startswith("/?") or path == "/":
        assert await page.locator("th.col-stream").is_hidden()
        assert await page.locator("th.col-queued").is_visible()


async def test_long_streams_are_cut_with_the_whole_id_on_hover(make_context: Any) -> None:
    page = await (await make_context()).new_page()
    long_stream = "stream-" + "x" * 90
    await start(page, "count_rows", long_stream, rows=1)
    await page.goto("/")
    cut = page.locator("code.cut", has_text=long_stream).first
    assert await cut.get_attribute("title") == f"rows__{long_stream}"
    assert await cut.evaluate("element => element.scrollWidth > element.clientWidth")
    assert await cut.evaluate("element => getComputedStyle(element).textOverflow") == "ellipsis"
    # times stay on one line
    queued = page.locator("td[data-field=enqueued] time").first
    assert await queued.evaluate("element => getComputedStyle(element).whiteSpace") == "nowrap"
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= DESKTOP["width"]

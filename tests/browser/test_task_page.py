"""A task's page in Debian's chromium, desktop (1280x800) and phone (390x844): its own run's
output live and replayed, the final state after Cancel without a reload, one look per state,
the output without JavaScript, the failure headline, the log view (follow, search, filter),
downloads, Run again and Retry, local times, live regions, and dark mode."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, Route

from taskcast import tasks
from taskcast.records import TaskStatus
from tests.browser.harness import Site, element_page, serve_taskcast, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

TASKS = "tests.support.task_page_tasks"
STEPS = f"{TASKS}.steps"
WAIT_MS = 10_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestServer]:
    folder = tmp_path_factory.mktemp("task-page")
    async with serve_taskcast(folder, process_workers=1, task_modules=[TASKS]) as served:
        yield served


@pytest_asyncio.fixture(loop_scope="module")
async def open_context(browser: Browser, server: TestServer) -> AsyncIterator[Any]:
    """Makes browser contexts on the server; every one must end without uncaught errors."""
    made: list[BrowserContext] = []
    errors: list[Exception] = []

    async def make(**options: Any) -> BrowserContext:
        context = await browser.new_context(base_url=str(server.make_url("/")), **options)
        context.on("weberror", lambda error: errors.append(error.error))
        made.append(context)
        return context

    yield make
    for context in made:
        await context.close()
    assert errors == [], "a page raised uncaught errors"


async def new_page(open_context: Any, **options: Any) -> Page:
    context: BrowserContext = await open_context(**options)
    return await context.new_page()


async def finished(task_id: str) -> TaskStatus:
    return (await tasks.wait_task(task_id, timeout=10)).status


async def failed_then_succeeded(publish_id: str) -> tuple[str, str]:
    failed = tasks.async_task(STEPS, count=2, fail=True, label="bad ", task_publish_id=publish_id)
    assert await finished(failed) is TaskStatus.FAILED
    passed = tasks.async_task(STEPS, count=3, label="good ", task_publish_id=publish_id)
    assert await finished(passed) is TaskStatus.SUCCESS
    return failed, passed


async def until(page: Page, expression: str, arg: Any = None) -> None:
    await page.wait_for_function(expression, arg=arg, timeout=WAIT_MS)


async def no_sideways_scrolling(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert width <= 0, f"the page scrolls sideways by {width}px"


@SIZES
async def test_a_failed_task_s_page_shows_its_own_run_and_says_failed_everywhere(
    open_context: Any, viewport: dict[str, int]
) -> None:
    failed, _ = await failed_then_succeeded(f"own{viewport['width']}")
    page = await new_page(open_context, viewport=viewport)
    await page.goto(f"/tasks/{failed}")
    await page.wait_for_selector("#task-output[finished][state=failed]", state="attached")
    lines = await page.locator("#task-output .data li").all_text_contents()
    assert lines == ["bad step 1", "bad step 2"]  # not the later successful run's
    assert await page.is_hidden("#log-static")
    # one label and colour per state: the record, the headline's status and the output box
    for box in ("#run-status", "#output-state", "#record [data-field=status]"):
        pill = page.locator(f"{box} .pill")
        assert await pill.get_attribute("class") == "pill pill-fail"
        assert (await pill.text_content() or "").strip() == "✕ Failed"
    assert "finished" not in (await page.text_content("#output-state") or "")
    # the headline, and the traceback collapsed below it without Taskcast's frames
    headline = page.locator("#failure-heading")
    assert await headline.is_visible()
    assert await headline.text_content() == "ValueError: step 2 went wrong"
    assert await page.get_attribute("details.traceback", "open") is None
    assert not await page.is_visible("details.traceback pre")
    await page.click("details.traceback summary")
    traceback = await page.text_content("details.traceback pre") or ""
    assert "task_page_tasks.py" in traceback and "/taskcast/" not in traceback
    await no_sideways_scrolling(page)


@SIZES
async def test_without_javascript_a_finished_task_shows_its_output(
    open_context: Any, viewport: dict[str, int]
) -> None:
    failed, _ = await failed_then_succeeded(f"nojs{viewport['width']}")
    page = await new_page(open_context, viewport=viewport, java_script_enabled=False)
    await page.goto(f"/tasks/{failed}")
    assert await page.locator("#log-static li").all_text_contents() == ["bad step 1", "bad step 2"]
    assert await page.is_visible("#log-static")
    assert await page.is_hidden("#task-output")  # nothing says "reconnecting…"
    assert await page.is_hidden("#log-tools")  # search needs the script
    assert (await page.text_content("#output-state") or "").strip() == "✕ Failed"
    assert await page.is_visible("#failure-heading")
    await no_sideways_scrolling(page)


async def test_cancel_landing_before_the_feed_connects_still_reaches_the_final_state(
    open_context: Any,
) -> None:
    """The record changes between the page's render and its feed's connect: the page script is
    held until the task has been cancelled, so the feed never reports the change itself."""
    held = tasks.async_task(f"{TASKS}.hold")
    page = await new_page(open_context)
    release = asyncio.Event()

    async def hold_script(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/static/task-page.js", hold_script)
    await page.goto(f"/tasks/{held}", wait_until="commit")
    await page.wait_for_selector("#cancel-form", state="attached")
    assert tasks.cancel(held)
    assert await finished(held) is TaskStatus.CANCELLED
    release.set()
    await page.wait_for_selector("#run-status .pill[data-status=cancelled]", timeout=WAIT_MS)
    assert await page.locator("#cancel-form").count() == 0
    assert await page.text_content("#again-form button") == "Run again"
    await until(
        page, "document.querySelector('#output-state .pill')?.dataset.status === 'cancelled'"
    )


@SIZES
async def test_cancel_reaches_the_final_state_every_time_without_a_reload(
    open_context: Any, viewport: dict[str, int]
) -> None:
    page = await new_page(open_context, viewport=viewport)
    for _ in range(3):
        held = tasks.async_task(f"{TASKS}.hold")
        await page.goto(f"/tasks/{held}")
        await page.evaluate("window.__sameDocument = true")
        await page.click("#cancel-form button")
        await page.wait_for_url(f"**/tasks/{held}")
        await page.wait_for_selector("#run-status .pill[data-status=cancelled]", timeout=WAIT_MS)
        assert await page.locator("#cancel-form").count() == 0
        await no_sideways_scrolling(page)


async def test_a_live_run_streams_then_turns_succeeded_without_a_reload(open_context: Any) -> None:
    task_id = tasks.async_task(STEPS, count=30, delay=0.05, task_publish_id="live")
    page = await new_page(open_context, viewport=PHONE)
    await page.goto(f"/tasks/{task_id}")
    await page.evaluate("window.__sameDocument = true")
    await until(page, "document.querySelectorAll('#task-output .data li').length >= 3")
    progress = page.locator("#task-output .ptig-progress progress")
    assert await progress.get_attribute("aria-label") == "Progress"
    assert await page.get_attribute("#task-output .ptig-progress", "aria-live") == "polite"
    await page.wait_for_selector("#run-status .pill[data-status=success]", timeout=WAIT_MS)
    await until(page, "document.querySelector('#output-state .pill').dataset.status === 'success'")
    assert (await page.text_content("#output-state") or "").strip() == "✓ Succeeded"
    assert await page.locator("#task-output .data li").count() == 30
    assert await page.evaluate("window.__sameDocument") is True
    assert await page.text_content("#again-form button") == "Run again"


async def test_the_log_follows_the_end_until_scrolled_up(open_context: Any) -> None:
    task_id = tasks.async_task(STEPS, count=1000, delay=0.02, task_publish_id="tail")
    page = await new_page(open_context, viewport=DESKTOP)
    await page.goto(f"/tasks/{task_id}")
    at_end = (
        "(() => { const l = document.getElementById('log');"
        " return l.scrollHeight - l.scrollTop - l.clientHeight < 4; })()"
    )
    await until(page, "document.querySelectorAll('#task-output .data li').length >= 60")
    box = await page.evaluate(
        "(() => { const l = document.getElementById('log'); return [l.scrollHeight, l.clientHeight]; })()"
    )
    assert box[0] > box[1], "the log's height is bounded"
    await until(page, at_end)
    await page.evaluate("document.getElementById('log').scrollTop = 0")
    await until(page, "document.getElementById('log').dataset.following === 'no'")
    count = await page.locator("#task-output .data li").count()
    await until(page, f"document.querySelectorAll('#task-output .data li').length > {count + 20}")
    assert await page.evaluate("document.getElementById('log').scrollTop") == 0
    await page.click("#log-follow")
    await until(page, "document.getElementById('log').dataset.following === 'yes'")
    await until(page, at_end)
    assert tasks.cancel(task_id)


async def test_search_highlights_and_filters_the_output(open_context: Any) -> None:
    task_id = tasks.async_task(STEPS, count=12, task_publish_id="search")
    await finished(task_id)
    page = await new_page(open_context)
    await page.goto(f"/tasks/{task_id}")
    await page.wait_for_selector("#task-output[finished][state=success]", state="attached")
    await page.fill("#log-search", "step 1")
    await until(page, "document.getElementById('log-matches').textContent === '4 matches'")
    assert await page.evaluate("CSS.highlights.get('log-match').size") == 4
    assert await page.locator("#task-output .data li:visible").count() == 12
    await page.check("#log-filter")
    visible = await page.locator("#task-output .data li:visible").all_text_contents()
    assert visible == ["step 1", "step 10", "step 11", "step 12"]
    await page.fill("#log-search", "")
    assert await page.locator("#task-output .data li:visible").count() == 12
    assert await page.text_content("#log-matches") == ""


async def test_retry_and_run_again_start_the_same_call_in_one_click(open_context: Any) -> None:
    failed, passed = await failed_then_succeeded("again")
    page = await new_page(open_context)
    await page.goto(f"/tasks/{failed}")
    await page.click("#again-form button:text('Retry')")
    await page.wait_for_url(lambda url: "/tasks/" in url and failed not in url)
    retried = page.url.rsplit("/", 1)[1]
    assert await finished(retried) is TaskStatus.FAILED
    await page.wait_for_selector("#task-output[finished][state=failed]", state="attached")
    assert await page.locator("#task-output .data li").all_text_contents() == [
        "bad step 1",
        "bad step 2",
    ]
    await page.goto(f"/tasks/{passed}")
    await page.click("#again-form button:text('Run again')")
    await page.wait_for_url(lambda url: "/tasks/" in url and passed not in url)
    assert await finished(page.url.rsplit("/", 1)[1]) is TaskStatus.SUCCESS


async def test_output_result_and_traceback_download_as_files(open_context: Any) -> None:
    failed, passed = await failed_then_succeeded("files")
    page = await new_page(open_context, accept_downloads=True)
    await page.goto(f"/tasks/{passed}")
    for link, name in (("Download output", "output.txt"), ("Download result", "result.json")):
        async with page.expect_download() as started:
            await page.click(f"text={link}")
        assert (await started.value).suggested_filename == f"{passed}-{name}"
    await page.goto(f"/tasks/{failed}")
    async with page.expect_download() as started:
        await page.click("text=Download traceback")
    download = await started.value
    assert download.suggested_filename == f"{failed}-traceback.txt"
    path = await download.path()
    assert path.read_text().rstrip().endswith("ValueError: step 2 went wrong")


async def test_times_are_in_the_viewer_s_zone_and_headings_are_in_order(open_context: Any) -> None:
    _, passed = await failed_then_succeeded("zone")
    page = await new_page(open_context, timezone_id="Asia/Tokyo")
    await page.goto(f"/tasks/{passed}")
    shown = await page.evaluate(
        """(() => {
          const t = document.querySelector('#run-status time');
          const style = {hour: '2-digit', minute: '2-digit', second: '2-digit'};
          const local = new Intl.DateTimeFormat(undefined, style)
            .format(new Date(t.getAttribute('datetime')));
          return [t.textContent, local, Intl.DateTimeFormat().resolvedOptions().timeZone];
        })()"""
    )
    assert shown[0] == shown[1] and shown[2] == "Asia/Tokyo"
    levels = await page.evaluate(
        "[...document.querySelectorAll('main h1, main h2, main h3, main h4')]"
        ".filter((h) => h.offsetParent !== null).map((h) => Number(h.tagName[1]))"
    )
    assert levels[0] == 1 and all(b - a <= 1 for a, b in itertools.pairwise(levels))
    assert await page.get_attribute("#run-status", "aria-live") == "polite"
    assert await page.get_attribute("#task-output", "aria-live") == "polite"


async def test_dark_mode_uses_the_dark_tokens(open_context: Any) -> None:
    failed, _ = await failed_then_succeeded("dark")
    page = await new_page(open_context, color_scheme="dark", viewport=PHONE)
    await page.goto(f"/tasks/{failed}")
    await page.wait_for_selector("#task-output[finished]", state="attached")
    colours = await page.evaluate(
        """(() => {
          const style = (selector) => getComputedStyle(document.querySelector(selector));
          return [style('#log').backgroundColor, style('#log').color,
                  style('#output-state .pill').color, style('.failure-exception').color];
        })()"""
    )
    assert colours == [
        "rgb(22, 27, 34)",
        "rgb(230, 237, 243)",
        "rgb(255, 161, 152)",
        "rgb(255, 161, 152)",
    ]
    await no_sideways_scrolling(page)


async def test_the_element_names_its_run_and_keeps_it_across_changes_and_resumes(
    site: Site, page: Page
) -> None:
    site.pages["run"] = element_page().replace("<ptig-task ", '<ptig-task run_id="r1" ')
    await page.goto("/t/run")
    first = await site.accept()
    assert await first.receive() == {"id": "demo__1", "run": "r1"}
    await page.evaluate("document.querySelector('ptig-task').setAttribute('run_id', 'r2')")
    second = await site.accept()
    assert await second.receive() == {"id": "demo__1", "run": "r2"}
    await second.start()
    await second.event("<li>a</li>===>>.data", seq=1)
    await wait_until(page, "document.querySelectorAll('.data li').length === 1")
    await second.close(1011)
    third = await site.accept()
    assert await third.receive() == {"id": "demo__1", "after": 1, "run": "r2"}

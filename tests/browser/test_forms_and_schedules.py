"""Start forms and the schedules page in Debian's chromium, at desktop (1280x800) and phone
(390x844) sizes, with JavaScript on and off where it matters, light and dark, checked with
axe-core in the states the page-by-page look test does not reach (a refused form, schedules
listed, the Delete dialog and its page)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, FloatRect, Page

from taskcast.schedules.helpers import daily
from taskcast.schedules.rules import Cron
from taskcast.web.keys import SCHEDULER
from tests.browser.axe import assert_accessible
from tests.browser.harness import serve_taskcast

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

TASKS = "tests.support.console_tasks"
FORMS = "tests.support.form_tasks"
CODED = "tests.support.coded_schedules"
CODED_NAME = "tests.support.sample_tasks.note_run"
WAIT_MS = 10_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])

ContextFactory = Callable[..., Awaitable[BrowserContext]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestServer]:
    folder = tmp_path_factory.mktemp("forms")
    async with serve_taskcast(
        folder, process_workers=1, task_modules=[TASKS, FORMS, CODED], timezone="UTC"
    ) as served:
        yield served


def note_console_error(message: ConsoleMessage, problems: list[str]) -> None:
    """Keep a console error, but for two loads that fail on purpose: a refused start form
    answers 400 (its status is asserted), and the favicon is not this page's to serve."""
    if message.type != "error":
        return
    url = message.location.get("url", "")
    refused_form = "/start/" in url and "status of 400" in message.text
    if url.endswith("/favicon.ico") or refused_form:
        return
    problems.append(f"{message.text} ({url})")


@pytest_asyncio.fixture(loop_scope="module")
async def open_context(browser: Browser, server: TestServer) -> AsyncIterator[ContextFactory]:
    """Browser contexts on the server (viewport, JavaScript, colour scheme as asked); none may
    raise an uncaught error or log a console error."""
    made: list[BrowserContext] = []
    problems: list[str] = []

    async def make(
        size: dict[str, int] = DESKTOP, *, javascript: bool = True, dark: bool = False
    ) -> BrowserContext:
        context = await browser.new_context(
            base_url=str(server.make_url("/")),
            viewport=size,  # type: ignore[arg-type]
            java_script_enabled=javascript,
            color_scheme="dark" if dark else "light",
        )
        context.on("weberror", lambda error: problems.append(str(error.error)))
        context.on("console", lambda message: note_console_error(message, problems))
        made.append(context)
        return context

    yield make
    for context in made:
        await context.close()
    assert problems == [], "pages raised errors or logged console errors"


async def no_sideways_scrolling(page: Page) -> None:
    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"


async def box(page: Page, selector: str) -> FloatRect:
    found = await page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


# -- start forms -----------------------------------------------------------------------------------


@SIZES
async def test_the_form_reads_from_the_docstring_in_one_column_on_a_phone(
    open_context: ContextFactory, size: dict[str, int]
) -> None:
    page = await (await open_context(size)).new_page()
    await page.goto(f"/start/{FORMS}.monthly_report")
    assert await page.text_content(".start-page .summary") == (
        "Build the monthly sales report for one region."
    )
    region = page.get_by_label("region")
    assert await region.get_attribute("required") is not None
    help_text = await page.text_content("#h-region")
    assert help_text is not None and 'Sales region code, such as "EU" or "US".' in help_text
    # the help is the field's description for assistive technology
    assert (
        await region.evaluate(
            "el => el.getAttribute('aria-describedby').split(' ')"
            ".map(id => document.getElementById(id).textContent).join(' ')"
        )
        == help_text
    )
    assert "default 1.0" in (await page.text_content("#h-scale") or "")
    label, field = await box(page, "label[for=f-region]"), await box(page, "#f-region")
    if size is PHONE:
        assert label["y"] + label["height"] <= field["y"] + 1, "label above its field"
        assert field["width"] > 300
    else:
        assert label["x"] + label["width"] <= field["x"], "label beside its field"
        assert abs(label["y"] - field["y"]) < field["height"]
    await no_sideways_scrolling(page)
    registry = await (await open_context(size)).new_page()
    await registry.goto("/registry")
    assert await registry.locator("li.registered").count() >= 5
    await no_sideways_scrolling(registry)


async def test_the_browser_refuses_an_empty_required_field(open_context: ContextFactory) -> None:
    page = await (await open_context()).new_page()
    await page.goto(f"/start/{FORMS}.monthly_report")
    await page.fill("#f-year", "2025")
    await page.click("form.start button")
    assert await page.evaluate("document.querySelector('#f-region').validity.valueMissing")
    assert page.url.endswith(f"/start/{FORMS}.monthly_report")


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
async def test_the_server_refuses_a_blank_field_and_keeps_what_was_typed(
    open_context: ContextFactory, javascript: bool
) -> None:
    page = await (await open_context(PHONE, javascript=javascript)).new_page()
    await page.goto(f"/start/{FORMS}.monthly_report")
    await page.fill("#f-region", "   ")  # not empty to the browser, blank to the server
    await page.fill("#f-year", "2025")
    await page.fill("#f-scale", "2.5")
    await page.check("#f-dry_run")
    await page.click("form.start button")
    await page.wait_for_selector("#form-error", timeout=WAIT_MS)
    assert "1 field to mend" in (await page.text_content("#form-error") or "")
    assert await page.text_content("#e-region") == "region is required: fill it in"
    assert await page.get_attribute("#f-region", "aria-invalid") == "true"
    assert await page.input_value("#f-year") == "2025"
    assert await page.input_value("#f-scale") == "2.5"
    assert await page.is_checked("#f-dry_run")
    assert await page.evaluate("document.activeElement.id") == "f-region"
    await no_sideways_scrolling(page)
    if javascript:  # axe is a script: it runs where scripts do
        await assert_accessible(page)
    await page.click("#form-error a[href='#f-region']")
    await page.fill("#f-region", "EU")
    await page.click("form.start button")
    await page.wait_for_url("**/tasks/*", timeout=WAIT_MS)


async def test_two_starts_of_a_publish_task_from_the_form_both_run(
    open_context: ContextFactory,
) -> None:
    context = await open_context()
    streams = []
    for _ in range(2):
        page = await context.new_page()
        await page.goto(f"/start/{TASKS}.count_rows")
        await page.fill("#f-rows", "40")
        await page.fill("#f-delay", "0.1")
        await page.click("form.start button")
        await page.wait_for_url("**/tasks/*", timeout=WAIT_MS)
        streams.append(await page.get_attribute("ptig-task", "task_id"))
    assert streams[0] != streams[1] and all(s and s.startswith("rows__") for s in streams)


async def test_the_form_follows_the_dark_scheme(open_context: ContextFactory) -> None:
    page = await (await open_context(dark=True)).new_page()
    await page.goto(f"/start/{FORMS}.monthly_report")
    colours = await page.evaluate(
        "[getComputedStyle(document.body).backgroundColor,"
        " getComputedStyle(document.querySelector('#f-region')).backgroundColor]"
    )
    assert colours == ["rgb(13, 17, 23)", "rgb(13, 17, 23)"]


# -- schedules -------------------------------------------------------------------------------------


def add_schedule(server: TestServer, name: str, rule: Any) -> None:
    scheduler = server.app[SCHEDULER]
    scheduler.schedule(
        "tests.support.sample_tasks.note_run", uuid.uuid4().hex, name=name, rule=rule
    )


@SIZES
async def test_rules_in_words_the_zone_named_and_no_sideways_scrolling(
    open_context: ContextFactory, server: TestServer, size: dict[str, int]
) -> None:
    add_schedule(server, "standup", daily(at="9:30", in_weekdays=[0]))
    add_schedule(server, "quarter", Cron("15 * * * *"))
    page = await (await open_context(size)).new_page()
    await page.goto("/schedules")
    assert "Schedules run on UTC time" in (await page.text_content("#schedule-zone") or "")
    rule = page.locator("tr[data-schedule=quarter] .rule")
    assert await rule.text_content() == "every hour at :15"
    assert await rule.get_attribute("title") == "cron: 15 * * * *"
    assert await page.text_content("tr[data-schedule=standup] .rule") == "every Monday at 09:30"
    coded = page.locator(f"tr[data-schedule='{CODED_NAME}'] .code-defined")
    assert await coded.text_content() == "in code"
    await no_sideways_scrolling(page)
    await assert_accessible(page)
    if size is PHONE:  # each schedule is a card: its cells stack
        name, when = (
            await box(page, "tr[data-schedule=quarter] td"),
            await box(page, "tr[data-schedule=quarter] td[data-label=When]"),
        )
        assert name["y"] + name["height"] <= when["y"] + 1


@SIZES
async def test_delete_asks_in_a_dialog_and_keep_it_keeps_it(
    open_context: ContextFactory, server: TestServer, size: dict[str, int]
) -> None:
    add_schedule(server, "to-delete", daily(at="3:00"))
    page = await (await open_context(size)).new_page()
    await page.goto("/schedules")
    await page.click("tr[data-schedule=to-delete] a.delete")
    dialog = page.locator("#delete-dialog")
    await dialog.wait_for(state="visible", timeout=WAIT_MS)
    assert await dialog.locator(".name").text_content() == "to-delete"
    assert "once deleted, it is gone" in (await dialog.locator(".returns").text_content() or "")
    assert page.url.endswith("/schedules")
    await assert_accessible(page)
    await dialog.locator("button.cancel").click()
    await dialog.wait_for(state="hidden", timeout=WAIT_MS)
    assert "to-delete" in server.app[SCHEDULER].entries
    await page.click("tr[data-schedule=to-delete] a.delete")
    await dialog.locator("button.danger").click()
    await page.wait_for_selector("#schedule-notice .notice", timeout=WAIT_MS)
    assert await page.text_content("#schedule-notice .notice") == "to-delete deleted"
    assert "to-delete" not in server.app[SCHEDULER].entries
    assert await page.locator("tr[data-schedule=to-delete]").count() == 0


async def test_without_javascript_delete_asks_on_its_own_page_and_says_code_returns(
    open_context: ContextFactory, server: TestServer
) -> None:
    page = await (await open_context(PHONE, javascript=False)).new_page()
    await page.goto("/schedules")
    await page.click(f"tr[data-schedule='{CODED_NAME}'] a.delete")
    await page.wait_for_url("**/delete", timeout=WAIT_MS)
    assert "Delete schedule" in (await page.text_content("h1") or "")
    returns = f"defined in code ({CODED}.init_schedule): it returns at the next start"
    assert await page.text_content(".returns") == f"It is {returns}."
    await no_sideways_scrolling(page)
    checked = await (await open_context(PHONE)).new_page()  # axe needs scripts
    await checked.goto(page.url)
    await assert_accessible(checked)
    await page.click("form.confirm button.danger")
    await page.wait_for_url("**/schedules?*", timeout=WAIT_MS)
    notice = await page.text_content("#schedule-notice .notice")
    assert notice == f"{CODED_NAME} deleted; it is {returns}"
    assert CODED_NAME not in server.app[SCHEDULER].entries


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
async def test_run_now_links_its_notice_to_the_task(
    open_context: ContextFactory, server: TestServer, javascript: bool
) -> None:
    add_schedule(server, "nightly", daily(at="2:30"))
    page = await (await open_context(javascript=javascript)).new_page()
    await page.goto("/schedules")
    await page.click("tr[data-schedule=nightly] button:text('Run now')")
    link = page.locator("#schedule-notice a")
    await link.wait_for(timeout=WAIT_MS)
    task_id = server.app[SCHEDULER].get("nightly").last_task
    assert task_id is not None and await link.text_content() == f"task {task_id[:8]}"
    await link.click()
    await page.wait_for_url(f"**/tasks/{task_id}", timeout=WAIT_MS)

"""Every console page in chromium, at desktop and phone sizes, light and dark: axe-core finds no
serious or critical violation, the page logs no error, nothing scrolls sideways, the navigation
marks the page's section, and the favicon is served. Then the pages without JavaScript, and the
sign-in page of a server that asks for a token."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, ConsoleMessage, Page

from taskcast.records import TaskStatus
from taskcast.spec import build_spec
from taskcast.web.keys import RUNNER
from tests.browser.axe import assert_accessible, axe_violations, describe
from tests.browser.harness import serve_taskcast
from tests.support.eventually import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

TASKS = "tests.support.console_tasks"
TOKEN = "look-token-123"
WAIT_MS = 10_000
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
SCHEMES = ("light", "dark")


@dataclasses.dataclass(frozen=True)
class Console:
    """The served console and the ids of its example tasks, one per state."""

    server: TestServer
    tasks: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Console]:
    """One task of each state: a run at a time, so the last one started waits as queued."""
    folder = tmp_path_factory.mktemp("look")
    async with serve_taskcast(
        folder, process_workers=1, max_concurrency=1, task_modules=[TASKS]
    ) as server:
        runner = server.app[RUNNER]

        async def run(func: str, status: TaskStatus | None, **kwargs: Any) -> str:
            task_id = runner.submit(build_spec(f"{TASKS}.{func}", (), kwargs))
            if status is not None:
                await eventually(
                    lambda: (record := runner.get(task_id)) is not None and record.status is status,
                    timeout=10,
                    what=f"{func} {status.value}",
                )
            return task_id

        tasks = {
            "finished": await run("count_rows", TaskStatus.SUCCESS, task_publish_id="look1"),
            "failed": await run("slow_async", TaskStatus.FAILED, seconds="not a number"),
            "running": await run("slow_async", TaskStatus.RUNNING, seconds=120),
            "queued": await run("multiply", TaskStatus.QUEUED, a=6),
        }
        yield Console(server, tasks)


@dataclasses.dataclass(frozen=True)
class Shown:
    """A page of the console: where it is, what status it answers, which section it is in."""

    path: str
    status: int = 200
    section: str | None = None


def pages(tasks: dict[str, str]) -> dict[str, Shown]:
    return {
        "list": Shown("/", section="Tasks"),
        "list-searched": Shown("/?q=count&sort=name&dir=asc", section="Tasks"),
        "stats": Shown("/stats?window=7d", section="Tasks"),
        "purge": Shown("/purge?older=7d", section="Tasks"),
        **{
            f"task-{state}": Shown(f"/tasks/{task_id}", section="Tasks")
            for state, task_id in tasks.items()
        },
        "start-list": Shown("/registry", section="Start a task"),
        "start-form": Shown(f"/start/{TASKS}.multiply", section="Start a task"),
        "schedules": Shown("/schedules", section="Schedules"),
        "demo": Shown("/demo", section="Demo"),
        "demo-tour": Shown("/demo/tour", section="Demo"),
        "demo-watch": Shown("/demo/watch?stream=rows__look1", section="Demo"),
        "demo-frames": Shown("/demo/frames?stream=rows__look1", section="Demo"),
        "not-found": Shown("/no/such/page", status=404),
        "unknown-task": Shown("/tasks/no-such-task", status=404, section="Tasks"),
    }


PAGE_NAMES = list(pages({"finished": "", "failed": "", "running": "", "queued": ""}))

#: axe violations that come from a page's own markup, by page and size: the axe check of such a
#: page is an expected failure until its markup is fixed (then this test fails and says so)
KNOWN_VIOLATIONS: dict[tuple[str, str], set[str]] = {}


class Errors:
    """The page's uncaught errors and console errors, but the browser's note of the 404 that an
    error page is answered with."""

    def __init__(self, page: Page, expected_status: int) -> None:
        self.seen: list[str] = []
        self.expected_status = expected_status
        page.on("pageerror", lambda error: self.seen.append(f"uncaught: {error}"))
        page.on("console", self.on_console)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        if self.expected_status >= 400 and message.text.startswith(
            f"Failed to load resource: the server responded with a status of {self.expected_status}"
        ):
            return
        self.seen.append(f"console: {message.text}")


async def marked_sections(page: Page) -> list[str]:
    marked = page.locator('nav[aria-label="Main"] a[aria-current="page"]')
    return [text.strip() for text in await marked.all_text_contents()]


async def assert_no_sideways_scroll(page: Page) -> None:
    widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"{page.url} is {widths[0]} px wide in {widths[1]} px"


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("size", list(VIEWPORTS))
@pytest.mark.parametrize("name", PAGE_NAMES)
async def test_every_page_looks_right_and_is_accessible(
    browser: Browser, console: Console, name: str, size: str, scheme: str
) -> None:
    shown = pages(console.tasks)[name]
    context = await browser.new_context(
        base_url=str(console.server.make_url("/")),
        viewport=VIEWPORTS[size],  # type: ignore[arg-type]
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    try:
        page = await context.new_page()
        errors = Errors(page, shown.status)
        response = await page.goto(shown.path, wait_until="load")
        assert response is not None and response.status == shown.status
        await page.wait_for_selector("main h1", timeout=WAIT_MS)
        # the shell: the product's name, the skip link, landmarks, the section marked
        assert await page.locator("header a.brand").inner_text() == "Taskcast"
        assert await page.get_attribute("a.skip-link", "href") == "#content"
        for landmark in ("header", "nav[aria-label=Main]", "main#content", "footer"):
            assert await page.locator(landmark).count() == 1, landmark
        assert await marked_sections(page) == ([shown.section] if shown.section else [])
        # the favicon
        icon = await page.get_attribute('link[rel="icon"]', "href")
        assert icon is not None
        served = await page.request.get(icon)
        assert served.status == 200 and served.headers["content-type"] == "image/svg+xml"
        # no sideways scrolling, no errors
        await assert_no_sideways_scroll(page)
        violations = await axe_violations(page)
        assert errors.seen == [], f"{shown.path}: {errors.seen}"
        known = KNOWN_VIOLATIONS.get((name, size), set())
        unexpected = [v for v in violations if v["id"] not in known]
        assert not unexpected, f"axe found on {shown.path}:\n{describe(unexpected)}"
        if known:
            still = sorted(known & {v["id"] for v in violations})
            assert still, f"{name}: {sorted(known)} fixed; take it out of KNOWN_VIOLATIONS"
            pytest.xfail(f"{name}: axe {', '.join(still)} from the page's own markup")
    finally:
        await context.close()


async def test_the_pages_render_without_javascript(browser: Browser, console: Console) -> None:
    context = await browser.new_context(
        base_url=str(console.server.make_url("/")),
        java_script_enabled=False,
        viewport=VIEWPORTS["phone"],  # type: ignore[arg-type]
    )
    try:
        page = await context.new_page()
        for name, shown in pages(console.tasks).items():
            response = await page.goto(shown.path)
            assert response is not None and response.status == shown.status, name
            assert await page.locator("main h1").is_visible(), name
            assert await marked_sections(page) == ([shown.section] if shown.section else [])
            await assert_no_sideways_scroll(page)
    finally:
        await context.close()


async def test_the_demo_link_is_shown_where_the_demo_is_mounted(
    browser: Browser, console: Console
) -> None:
    context = await browser.new_context(base_url=str(console.server.make_url("/")))
    try:
        page = await context.new_page()
        await page.goto("/")
        await page.click('nav[aria-label="Main"] >> text=Demo')
        await page.wait_for_url("**/demo")
        assert await page.locator("#start-demo").is_visible()
    finally:
        await context.close()


async def test_the_skip_link_moves_to_the_content(browser: Browser, console: Console) -> None:
    context = await browser.new_context(base_url=str(console.server.make_url("/")))
    try:
        page = await context.new_page()
        await page.goto("/registry")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip-link"
        assert await page.locator("a.skip-link").is_visible()
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "content"
    finally:
        await context.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guarded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestServer]:
    """A console that asks for a token."""
    folder = tmp_path_factory.mktemp("guarded")
    async with serve_taskcast(folder, process_workers=1, auth_token=TOKEN) as server:
        yield server


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("size", list(VIEWPORTS))
async def test_the_sign_in_page_has_no_navigation_and_keeps_next(
    browser: Browser, guarded: TestServer, size: str, scheme: str
) -> None:
    context = await browser.new_context(
        base_url=str(guarded.make_url("/")),
        viewport=VIEWPORTS[size],  # type: ignore[arg-type]
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    try:
        page = await context.new_page()
        errors = Errors(page, 401)
        await page.goto("/schedules")
        await page.wait_for_url("**/login?next=/schedules")
        assert await page.locator("nav").count() == 0
        await assert_no_sideways_scroll(page)
        await assert_accessible(page)
        # a wrong token: the page says so, and still goes where it was going after the right one
        await page.fill("input[name=token]", "wrong")
        await page.click("form button")
        await page.wait_for_selector("#login-error")
        assert "not right" in await page.inner_text("#login-error")
        assert await page.get_attribute("input[name=next]", "value") == "/schedules"
        assert await page.get_attribute("input[name=token]", "aria-invalid") == "true"
        assert await page.locator("nav").count() == 0
        await assert_no_sideways_scroll(page)
        await assert_accessible(page)
        await page.fill("input[name=token]", TOKEN)
        await page.click("form button")
        await page.wait_for_url("**/schedules")
        assert await marked_sections(page) == ["Schedules"]
        assert await page.locator("form.sign-out button").is_visible()
        assert errors.seen == []
    finally:
        await context.close()

"""<ptig-task> in Debian's chromium against the real Taskcast app on loopback.

The golden rows of the event mini-language travel through a real task and the real channel; the
seed's demo page runs end to end; a second tab joins late; the server drops a socket mid-stream;
an element is detached and attached again. Each run must leave every event applied exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page

from taskcast import tasks
from taskcast.web.keys import HUB, SOCKETS
from tests.browser.harness import serve_taskcast
from tests.support.eventually import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

CHANNEL = "/schtasks/show_task_events/channel/"
WAIT_MS = 10_000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TestServer]:
    async with serve_taskcast(
        tmp_path_factory.mktemp("live"),
        process_workers=2,
        task_modules=["tasks"],
        worker_initializer="tests.support.sample_tasks.fast_clock",
    ) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Browser, live_server: TestServer) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=str(live_server.make_url("/")))
    page = await context.new_page()
    errors: list[Exception] = []
    page.on("pageerror", lambda error: errors.append(error))
    yield page
    await context.close()
    assert errors == [], "the page raised uncaught errors"


async def element_on_page(page: Page, stream_id: str, inner: str, outer_after: str = "") -> None:
    """Loads an app page, then puts one fresh <ptig-task> for `stream_id` in a box on it."""
    await page.goto("/demo/watch?stream=placeholder")
    await page.evaluate(
        """([channel, streamId, inner, after]) => {
            document.querySelector('ptig-task').remove();
            const box = document.createElement('div');
            box.id = 'box';
            box.innerHTML = `<ptig-task websocket_href="${channel}" task_id="${streamId}">`
                + `${inner}</ptig-task>${after}`;
            document.querySelector('main').append(box);
        }""",
        [CHANNEL, stream_id, inner, outer_after],
    )
    await page.wait_for_selector("#box ptig-task[connected]", state="attached", timeout=WAIT_MS)


async def finished(page: Page, selector: str = "ptig-task") -> None:
    await page.wait_for_selector(f"{selector}[finished]", state="attached", timeout=WAIT_MS)


async def items(page: Page) -> list[str]:
    return await page.locator("ptig-task .data li").all_text_contents()


BASE = '<div class="data"><li>old</li></div><div class="b"></div>'
STATUS = "status"
GOLDEN = [
    (
        "<li>item 3</li>===>>.data",
        '<div class="data"><li>old</li><li>item 3</li></div><div class="b"></div>',
        STATUS,
    ),
    ("<b>new</b>===>.data", '<div class="data"><b>new</b></div><div class="b"></div>', STATUS),
    (
        "<li>new</li>===<<.data",
        '<div class="data"><li>new</li><li>old</li></div><div class="b"></div>',
        STATUS,
    ),
    ("<i>B</i>===(.data", "<i>B</i>" + BASE, STATUS),
    (
        "<i>A</i>===).data",
        '<div class="data"><li>old</li></div><i>A</i><div class="b"></div>',
        STATUS,
    ),
    ("<div class='log'></div>===>>", BASE + '<div class="log"></div>', STATUS),
    ("<b>S</b>===>^body/#status", BASE, "<b>S</b>"),
    ("<b>P</b>===>>../#status", BASE, "status<b>P</b>"),
    (
        "<li>a</li><li>b</li>===>>.data",
        '<div class="data"><li>old</li><div class="ajax-temp-item"><li>a</li><li>b</li></div></div>'
        '<div class="b"></div>',
        STATUS,
    ),
    (
        "<li>c</li> ===>> .data",
        '<div class="data"><li>old</li><div class="ajax-temp-item"><li>c</li> </div></div>'
        '<div class="b"></div>',
        STATUS,
    ),
    (
        "plain text===>>.data",
        '<div class="data"><li>old</li>plain text</div><div class="b"></div>',
        STATUS,
    ),
    (
        "===>>.data",
        '<div class="data"><li>old</li><div class="ajax-temp-item"></div></div><div class="b"></div>',
        STATUS,
    ),
    ("<b>X</b>===>>.missing", BASE, STATUS),
    (
        "<i>x</i>===>.a===>>.b",
        '<div class="data"><li>old</li></div>'
        '<div class="b"><div class="ajax-temp-item"><i>x</i>===&gt;.a</div></div>',
        STATUS,
    ),
]


@pytest.mark.parametrize(("index", "row"), list(enumerate(GOLDEN)))
async def test_golden_row_through_the_real_channel(
    tab: Page, index: int, row: tuple[str, str, str]
) -> None:
    event, expected_element, expected_status = row
    stream_id = f"golden__row{index}"
    await element_on_page(tab, stream_id, BASE, '<p id="status">status</p>')
    tasks.async_task(
        "tests.support.sample_tasks.send_events", task_publish_id=f"row{index}", events=[event]
    )
    await finished(tab)
    assert await tab.eval_on_selector("#box ptig-task", "e => e.innerHTML") == expected_element
    assert await tab.eval_on_selector("#status", "e => e.innerHTML") == expected_status


async def test_whole_stream_check(tab: Page) -> None:
    await element_on_page(
        tab, "golden__whole", '<div name="task_status"></div><div class="data"></div>'
    )
    tasks.async_task(
        "tests.support.sample_tasks.send_events",
        task_publish_id="whole",
        events=["<li>item 0</li>===>>.data", "<li>item 1</li>===>>.data"],
    )
    await finished(tab)
    assert await tab.eval_on_selector("#box ptig-task", "e => e.innerHTML") == (
        '<div name="task_status" class="task_finished"></div>'
        '<div class="data"><li>item 0</li><li>item 1</li></div>'
    )
    assert await tab.get_attribute("#box ptig-task", "state") == "success"


async def test_seed_demo_page_end_to_end_and_a_late_second_tab(
    tab: Page, browser: Browser, live_server: TestServer
) -> None:
    await tab.goto("/demo")
    async with tab.expect_navigation(url="**/demo/watch?stream=demo__*", timeout=WAIT_MS):
        await tab.click("#start-demo")  # a POST form: starting a task is no GET
    await finished(tab)
    expected = [f"item {i}" for i in range(30)]
    assert await items(tab) == expected
    assert await tab.locator("[name=task_end_info]").is_visible()
    assert await tab.locator("[name=task_end_info]").text_content() == "Finish"
    status = tab.locator("ptig-task [name=task_status]")
    assert await status.get_attribute("class") == "task_finished"
    stream_id = await tab.get_attribute("ptig-task", "task_id")
    assert stream_id is not None and stream_id.startswith("demo__")

    context = await browser.new_context(base_url=str(live_server.make_url("/")))
    second = await context.new_page()
    await second.goto(f"/demo/watch?stream={stream_id}")
    await finished(second)
    assert await items(second) == expected
    assert await second.locator("[name=task_end_info]").is_visible()
    await context.close()


async def test_second_tab_joining_mid_stream_sees_the_same_list(
    tab: Page, browser: Browser, live_server: TestServer
) -> None:
    await element_on_page(tab, "aio__tabs", '<div class="data"></div>')
    tasks.async_task(
        "tests.support.sample_tasks.async_events", task_publish_id="tabs", count=40, pause=0.03
    )
    await tab.wait_for_function(
        "document.querySelectorAll('.data li').length >= 10", timeout=WAIT_MS
    )
    context = await browser.new_context(base_url=str(live_server.make_url("/")))
    second = await context.new_page()
    await element_on_page(second, "aio__tabs", '<div class="data"></div>')
    await finished(tab)
    await finished(second)
    expected = [str(i) for i in range(40)]
    assert await items(tab) == expected
    assert await items(second) == expected
    await context.close()


async def test_socket_dropped_by_the_server_resumes_without_loss_or_duplicate(
    tab: Page, live_server: TestServer
) -> None:
    await element_on_page(tab, "aio__drop", '<div class="data"></div>')
    await tab.evaluate("""() => {
        window.__connections = 0;
        document.addEventListener('ptig-task:connection', (e) => {
            if (e.detail.connected) window.__connections += 1;
        });
    }""")
    tasks.async_task(
        "tests.support.sample_tasks.async_events", task_publish_id="drop", count=60, pause=0.02
    )
    await tab.wait_for_function(
        "document.querySelectorAll('.data li').length >= 10", timeout=WAIT_MS
    )
    for ws in live_server.app[SOCKETS]:
        await ws.close(code=1011, message=b"dropped by the test")
    await finished(tab)
    assert await items(tab) == [str(i) for i in range(60)]
    assert await tab.evaluate("window.__connections") >= 1


async def test_detach_and_reattach_resumes(tab: Page, live_server: TestServer) -> None:
    await element_on_page(tab, "aio__detach", '<div class="data"></div>')
    tasks.async_task(
        "tests.support.sample_tasks.async_events", task_publish_id="detach", count=40, pause=0.02
    )
    await tab.wait_for_function(
        "document.querySelectorAll('.data li').length >= 5", timeout=WAIT_MS
    )
    await tab.evaluate(
        "window.__element = document.querySelector('#box ptig-task'); window.__element.remove()"
    )
    assert not await tab.evaluate("window.__element.hasAttribute('connected')")
    stream = live_server.app[HUB].get("aio__detach")
    assert stream is not None
    await eventually(lambda: live_server.app[HUB].subscriber_count == 0, 5, "unsubscribed")
    at_detach: Any = await tab.evaluate("window.__element.querySelectorAll('li').length")
    published = stream.last_seq
    await eventually(lambda: stream.last_seq >= published + 5, 5, "more events published")
    detached_count: Any = await tab.evaluate("window.__element.querySelectorAll('li').length")
    assert detached_count == at_detach, "events arrived while detached"
    await tab.evaluate("document.querySelector('#box').append(window.__element)")
    await finished(tab)
    assert await items(tab) == [str(i) for i in range(40)]

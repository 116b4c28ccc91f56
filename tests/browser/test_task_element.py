"""The <ptig-task> element against a fake channel scripted by each test (contract sections B, C)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Page

from .harness import (
    CHANNEL_PATH,
    Connection,
    PageLog,
    Site,
    TaskHit,
    dom_events,
    element_page,
    probe,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

SUBSCRIBE = {"id": "demo__1"}
T0 = 1_700_000_000  # seconds; the fake clock's start


def item(n: int) -> str:
    return f"<li>item {n}</li>===>>.data"


async def open_element(page: Page, site: Site, **page_args: Any) -> Connection:
    """Loads a page with one element and returns the socket it opens."""
    site.pages["element"] = element_page(**page_args)
    await page.goto("/t/element")
    return await site.accept()


async def pause_clock(page: Page) -> None:
    """Fakes the page's timers; from here on they fire only when the test advances the clock."""
    await page.clock.install(time=T0)
    await page.clock.pause_at(T0 + 1)


async def items(page: Page) -> list[str]:
    return await page.locator(".data li").all_text_contents()


async def wait_items(page: Page, count: int) -> None:
    await wait_until(page, "(n) => document.querySelectorAll('.data li').length === n", count)


async def wait_attribute(page: Page, name: str, present: bool = True) -> None:
    await wait_until(
        page,
        "([name, present]) => document.querySelector('ptig-task').hasAttribute(name) === present",
        [name, present],
    )


async def test_socket_goes_to_the_page_host_and_port_with_websocket_href_verbatim(
    page: Page, site: Site
) -> None:
    href = "/ws/channel/?room=a%20b&x=1"
    conn = await open_element(page, site, websocket_href=href)
    assert conn.request.raw_path == href
    assert conn.request.host == f"127.0.0.1:{site.port}"
    assert await probe(page, "made") == [f"ws://127.0.0.1:{site.port}{href}"]
    assert await conn.receive() == SUBSCRIBE


async def test_pings_every_ten_seconds(page: Page, site: Site, page_log: PageLog) -> None:
    await pause_clock(page)
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await page.clock.fast_forward(9_999)
    assert await probe(page, "sent") == ['{"id":"demo__1"}']
    await page.clock.fast_forward(1)
    assert await conn.receive(pings=True) == {"ping": 1}
    await conn.send({"status": "pong"})
    await page.clock.fast_forward(10_000)
    assert await conn.receive(pings=True) == {"ping": 1}
    assert await probe(page, "sent") == ['{"id":"demo__1"}', '{"ping":1}', '{"ping":1}']
    assert not [line for line in page_log.console if "ptig-task" in line]  # pong is silent


async def test_task_href_is_fetched_once_before_the_id_is_sent(page: Page, site: Site) -> None:
    await page.context.add_cookies([{"name": "session", "value": "s1", "url": site.root}])
    conn = await open_element(page, site, task_href="/task/start?n=1")
    assert await conn.receive() == SUBSCRIBE
    assert site.timeline == ["GET /task/start?n=1", 'frame {"id":"demo__1"}']
    assert site.task_hits == [TaskHit("/task/start?n=1", {"session": "s1"})]
    # A reconnect must not start the task a second time.
    await conn.close(1011, "crash")
    again = await site.accept()
    assert await again.receive() == SUBSCRIBE
    assert len(site.task_hits) == 1


async def test_task_href_failure_is_reported_and_the_element_still_subscribes(
    page: Page, site: Site
) -> None:
    site.task_status = 500
    conn = await open_element(page, site, task_href="/task/start")
    assert await conn.receive() == SUBSCRIBE
    assert await dom_events(page, "error") == [{"message": "GET /task/start: HTTP 500"}]


@pytest.mark.parametrize("numbered", [True, False], ids=["with-seq", "upstream-frames"])
async def test_whole_stream_check(page: Page, site: Site, numbered: bool) -> None:
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    status = "document.querySelector('[name=task_status]').className"
    await conn.start()
    await wait_until(page, f"() => {status} === 'task_started'")
    await conn.event(item(0), 1 if numbered else None)
    await conn.event(item(1), 2 if numbered else None)
    await conn.stop()
    await wait_attribute(page, "finished")
    assert await page.eval_on_selector("ptig-task", "el => el.innerHTML") == (
        '<div name="task_status" class="task_finished"></div>'
        '<div class="data"><li>item 0</li><li>item 1</li></div>'
    )
    assert await dom_events(page, "stop") == [{"state": None, "error": None}]
    assert await page.eval_on_selector("ptig-task", "el => el.hasAttribute('state')") is False


async def test_seed_demo_shows_its_list_and_finish_notice(page: Page, site: Site) -> None:
    conn = await open_element(page, site, inner="")
    assert await conn.receive() == SUBSCRIBE
    await conn.start()
    await conn.event(
        "<ul class='data'></ul><div name='task_end_info' style='display: none;'>Finish</div>", 1
    )
    for n in range(3):
        await conn.event(item(n), n + 2)
    await wait_items(page, 3)
    finish = page.locator("[name=task_end_info]")
    assert await finish.is_hidden()
    await conn.stop(state="success")
    await wait_attribute(page, "finished")
    assert await finish.is_visible()
    assert await page.eval_on_selector("ptig-task", "el => el.innerHTML") == (
        '<div class="ajax-temp-item"><ul class="data">'
        "<li>item 0</li><li>item 1</li><li>item 2</li></ul>"
        '<div name="task_end_info" style="">Finish</div></div>'
    )


async def test_non_string_data_is_ignored(page: Page, site: Site, page_log: PageLog) -> None:
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await conn.start()
    odd: list[Any] = [None, 5, {"html": "<li>no</li>"}, ["<li>no</li>===>>.data"], True]
    for seq, data in enumerate(odd, start=1):
        await conn.event(data, seq)
    await conn.event("<li>yes</li>===>>.data", 6)
    await wait_items(page, 1)
    assert await items(page) == ["yes"]
    ignored = [line for line in page_log.console if "not a string" in line]
    assert len(ignored) == 5 and all(line.startswith("debug: ") for line in ignored)
    details = await dom_events(page, "event")
    assert details == [
        {"data": d, "seq": s} for s, d in enumerate([*odd, "<li>yes</li>===>>.data"], 1)
    ]


async def _close_1011(conn: Connection) -> int:
    await conn.close(1011, "internal error")
    return 1011


async def _close_1013(conn: Connection) -> int:
    await conn.close(1013, "client too slow")
    return 1013


async def _close_1000_early(conn: Connection) -> int:
    await conn.close(1000)
    return 1000


async def _abort(conn: Connection) -> int:
    conn.abort()
    return 1006  # what the browser reports for a connection lost without a close frame


DROPS: dict[str, Callable[[Connection], Awaitable[int]]] = {
    "1011": _close_1011,
    "1013-too-slow": _close_1013,
    "1000-before-stop": _close_1000_early,
    "abort": _abort,
}


@pytest.mark.parametrize("drop", DROPS)
async def test_dropped_socket_reconnects_and_resumes_after_the_last_seq(
    page: Page, site: Site, drop: str
) -> None:
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await conn.start()
    await conn.event(item(0), 1)
    await conn.event(item(1), 2)
    await wait_items(page, 2)
    code = await DROPS[drop](conn)

    again = await site.accept()
    assert await again.receive() == {"id": "demo__1", "after": 2}
    await again.start()
    await again.event(item(1), 2)  # a server may send the last one again: it is skipped
    await again.event(item(2), 3)
    await again.event(item(3), 4)
    await again.stop(state="success")
    await wait_attribute(page, "finished")

    assert await items(page) == ["item 0", "item 1", "item 2", "item 3"]
    assert [d["seq"] for d in await dom_events(page, "event")] == [1, 2, 3, 4]
    assert await dom_events(page, "start") == [{"resumed": False}, {"resumed": True}]
    connection = [(d["connected"], d["code"]) for d in await dom_events(page, "connection")]
    assert connection == [(True, None), (False, code), (True, None), (False, 1000)]
    assert await dom_events(page, "error") == []


#: the reconnect delay's bounds for attempt n, as docs/element.md gives them: between half and
#: all of min(10 s, 250 ms x 2^n)
def retry_bounds(attempt: int) -> tuple[int, int]:
    ceiling = min(10_000, 250 * 2**attempt)
    return ceiling // 2, ceiling


async def closes_seen(page: Page) -> int:
    return len([d for d in await dom_events(page, "connection") if not d["connected"]])


async def refuse_and_time_the_retry(page: Page, site: Site, conn: Connection, at_ms: int) -> None:
    """Closes `conn` with 1011 and checks that the next socket is opened at `at_ms`, no sooner."""
    closes, made = await closes_seen(page), len(await probe(page, "made"))
    await conn.close(1011, "internal error")
    await wait_until(
        page,
        "(n) => window.__probe.events.filter("
        "(e) => e.type === 'ptig-task:connection' && !e.detail.connected).length === n",
        closes + 1,
    )
    await page.clock.run_for(at_ms - 1)
    assert len(await probe(page, "made")) == made, f"reconnected before {at_ms} ms"
    await page.clock.run_for(1)
    assert len(await probe(page, "made")) == made + 1, f"not reconnected after {at_ms} ms"


@pytest.mark.parametrize("jitter", [0.0, 0.9999], ids=["shortest", "longest"])
async def test_reconnect_delays_grow_to_the_cap_and_restart_after_progress(
    page: Page, site: Site, jitter: float
) -> None:
    """Math.random pinned to either end of its range: each delay is exactly at that end of the
    documented range, doubling from 125-250 ms to the cap of 5-10 s; the count restarts once a
    new socket delivers `start`."""
    await page.add_init_script(f"Math.random = () => {jitter}")
    await pause_clock(page)
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    end = 0 if jitter == 0.0 else 1
    # Attempts 0 to 5 double (125 ms to 4 s, or 250 ms to 8 s); 6, 7 and 8 are at the cap.
    for attempt in range(9):
        await refuse_and_time_the_retry(page, site, conn, retry_bounds(attempt)[end])
        conn = await site.accept()
        assert await conn.receive() == SUBSCRIBE
    await conn.start()
    await wait_until(page, "() => window.__probe.events.some((e) => e.type === 'ptig-task:start')")
    await refuse_and_time_the_retry(page, site, conn, retry_bounds(0)[end])


async def test_replay_from_a_server_without_seq_is_not_applied_twice(
    page: Page, site: Site
) -> None:
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await conn.start()
    await conn.event(item(0))
    await conn.event(item(1))
    await wait_items(page, 2)
    await conn.close(1011)
    again = await site.accept()
    assert await again.receive() == SUBSCRIBE  # nothing to resume from: a full replay follows
    await again.start()
    for n in range(3):
        await again.event(item(n))
    await again.stop()
    await wait_attribute(page, "finished")
    assert await items(page) == ["item 0", "item 1", "item 2"]


async def test_no_reconnect_after_stop(page: Page, site: Site) -> None:
    await pause_clock(page)
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await conn.start()
    await conn.event(item(0), 1)
    await conn.stop(state="success")
    await wait_attribute(page, "finished")
    await wait_attribute(page, "connected", present=False)
    await page.clock.run_for(60_000)
    assert len(await probe(page, "made")) == 1
    assert await probe(page, "sent") == ['{"id":"demo__1"}']
    assert site.incoming.empty()


@pytest.mark.parametrize("code", [1008, 1003, 1007, 1009])
async def test_refusal_close_codes_stop_reconnecting_and_report(
    page: Page, site: Site, code: int
) -> None:
    await pause_clock(page)
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await conn.close(code, "origin not allowed")
    await wait_until(page, "() => window.__probe.events.some((e) => e.type === 'ptig-task:error')")
    assert await dom_events(page, "error") == [
        {"message": f"the server refused the stream ({code}: origin not allowed)"}
    ]
    await page.clock.run_for(60_000)
    assert len(await probe(page, "made")) == 1
    assert site.incoming.empty()
    attributes = await page.eval_on_selector("ptig-task", "el => el.getAttributeNames()")
    assert "connected" not in attributes and "finished" not in attributes


async def test_detach_closes_and_stops_pings_and_reattach_resubscribes(
    page: Page, site: Site
) -> None:
    await pause_clock(page)
    conn = await open_element(page, site, task_href="/task/start")
    assert await conn.receive() == SUBSCRIBE
    await conn.start()
    await conn.event(item(0), 1)
    await conn.event(item(1), 2)
    await wait_items(page, 2)

    await page.evaluate("window.kept = document.querySelector('ptig-task'); window.kept.remove()")
    await conn.wait_closed()
    assert conn.ws.close_code == 1000
    sent = await probe(page, "sent")
    await page.clock.run_for(60_000)
    assert await probe(page, "sent") == sent  # no pings, no reconnect while detached
    assert len(await probe(page, "made")) == 1
    assert await page.evaluate("window.kept.hasAttribute('connected')") is False

    await page.evaluate("document.getElementById('box').append(window.kept)")
    again = await site.accept()
    assert await again.receive() == {"id": "demo__1", "after": 2}
    assert len(site.task_hits) == 1  # re-attaching does not start the task again
    sent = await probe(page, "sent")
    await page.clock.run_for(10_000)
    assert await again.receive(pings=True) == {"ping": 1}
    assert (await probe(page, "sent"))[len(sent) :] == ['{"ping":1}']  # one timer, not two


async def test_reflected_attributes_and_dom_events(page: Page, site: Site) -> None:
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await wait_attribute(page, "connected")
    await conn.start()
    await conn.event("<li>one</li>===>>.data", 7)
    await conn.stop(state="failed", error="ValueError: boom")
    await wait_attribute(page, "connected", present=False)

    element = page.locator("ptig-task")
    assert await element.get_attribute("finished") == ""
    assert await element.get_attribute("state") == "failed"
    assert await page.locator("ptig-task[finished][state=failed]").count() == 1
    events = await probe(page, "events")
    assert [(e["type"], e["detail"]) for e in events] == [
        ("ptig-task:connection", {"connected": True, "code": None, "reason": ""}),
        ("ptig-task:start", {"resumed": False}),
        ("ptig-task:event", {"data": "<li>one</li>===>>.data", "seq": 7}),
        ("ptig-task:stop", {"state": "failed", "error": "ValueError: boom"}),
        ("ptig-task:connection", {"connected": False, "code": 1000, "reason": ""}),
    ]
    assert all(e["bubbles"] and e["composed"] for e in events)


async def test_unknown_statuses_and_bad_frames_are_logged_and_ignored(
    page: Page, site: Site, page_log: PageLog
) -> None:
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await conn.start()
    await conn.send({"status": "progress", "data": "<li>no</li>===>>.data"})
    for raw in ["not json", "null", "[1, 2]"]:
        await conn.ws.send_str(raw)
    await conn.event(item(0), 1)
    await wait_items(page, 1)
    logged = [line for line in page_log.console if line.startswith("debug: ptig-task:")]
    assert len(logged) == 4
    assert await items(page) == ["item 0"]


async def test_changing_task_id_subscribes_to_the_new_stream(page: Page, site: Site) -> None:
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await conn.start()
    await conn.event(item(0), 5)
    await conn.stop(state="success")
    await wait_attribute(page, "finished")
    await page.eval_on_selector("ptig-task", "el => el.setAttribute('task_id', 'demo__2')")
    again = await site.accept()
    assert await again.receive() == {"id": "demo__2"}  # a new stream: no `after`
    attributes = await page.eval_on_selector("ptig-task", "el => el.getAttributeNames()")
    assert "finished" not in attributes and "state" not in attributes


async def test_without_websocket_href_nothing_connects_until_it_is_set(
    page: Page, site: Site
) -> None:
    site.pages["element"] = element_page(websocket_href="")
    await page.goto("/t/element")
    await wait_until(page, "() => customElements.get('ptig-task') !== undefined")
    assert await probe(page, "made") == []
    await page.eval_on_selector(
        "ptig-task", "(el, href) => el.setAttribute('websocket_href', href)", CHANNEL_PATH
    )
    conn = await site.accept()
    assert await conn.receive() == SUBSCRIBE


async def test_a_resume_that_finds_a_new_epoch_clears_and_renders_the_replay(
    page: Page, site: Site
) -> None:
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await conn.send({"status": "start", "epoch": "e1"})
    for n in range(3):
        await conn.event(item(n), n + 1)
    await wait_items(page, 3)
    await conn.close(1011)

    again = await site.accept()
    assert await again.receive() == {"id": "demo__1", "after": 3, "epoch": "e1"}
    # The server's copy was replaced: it names the new epoch and replays from the first event,
    # which differs from what the element had rendered.
    await again.send({"status": "start", "epoch": "e2"})
    for n in range(4):
        await again.event(item(10 + n), n + 1)
    await again.stop(state="success")
    await wait_attribute(page, "finished")
    assert await items(page) == ["item 10", "item 11", "item 12", "item 13"]
    assert await dom_events(page, "reset") == [{"epoch": "e2", "previous": "e1"}]
    assert [d["seq"] for d in await dom_events(page, "event")] == [1, 2, 3, 1, 2, 3, 4]


async def test_a_resume_in_the_same_epoch_only_takes_what_follows(page: Page, site: Site) -> None:
    conn = await open_element(page, site)
    assert await conn.receive() == SUBSCRIBE
    await conn.send({"status": "start", "epoch": "e1"})
    await conn.event(item(0), 1)
    await wait_items(page, 1)
    await conn.close(1011)
    again = await site.accept()
    assert await again.receive() == {"id": "demo__1", "after": 1, "epoch": "e1"}
    await again.send({"status": "start", "epoch": "e1"})
    await again.event(item(1), 2)
    await again.stop(state="success")
    await wait_attribute(page, "finished")
    assert await items(page) == ["item 0", "item 1"]
    assert await dom_events(page, "reset") == []

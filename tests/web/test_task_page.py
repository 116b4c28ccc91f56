"""A task's page and what hangs off it: the channel's one-run subscription, the server-rendered
output, the failure headline, downloads, Cancel and Run again / Retry."""

from __future__ import annotations

import html
import itertools
import json
import re
from typing import Any

import aiohttp
import pytest

from taskcast import tasks
from taskcast.records import TaskRecord
from taskcast.web.security import OpenAccess
from tests.conftest import ClientFactory, app_runner
from tests.support.pages import Client, text_of
from tests.support.wsclient import CHANNEL, event_data, next_frame, read_until_closed

TASKS = "tests.support.task_page_tasks"
STEPS = f"{TASKS}.steps"


@pytest.fixture
async def pages(make_client: ClientFactory) -> Client:
    client: Client = await make_client(task_modules=[TASKS])
    return client


async def failed_then_succeeded(publish_id: str = "x") -> tuple[str, str]:
    """A failed run of stream steps__<publish_id>, then a successful one of the same stream."""
    failed = tasks.async_task(STEPS, count=2, fail=True, label="bad ", task_publish_id=publish_id)
    assert (await tasks.wait_task(failed, timeout=10)).status.value == "failed"
    passed = tasks.async_task(STEPS, count=3, label="good ", task_publish_id=publish_id)
    assert (await tasks.wait_task(passed, timeout=10)).status.value == "success"
    return failed, passed


async def follow(client: Client, frame: dict[str, Any]) -> list[dict[str, Any]]:
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json(frame)
    frames = await read_until_closed(ws)
    assert ws.close_code == 1000
    return frames


def step_lines(frames: list[dict[str, Any]]) -> list[str]:
    return [data for data in event_data(frames) if "<li>" in data]


# -- the channel: one run -----------------------------------------------------------------------


async def test_a_run_subscription_replays_that_run_not_the_newest(pages: Client) -> None:
    failed, passed = await failed_then_succeeded()
    own = await follow(pages, {"id": "steps__x", "run": failed})
    assert own[0] == {"status": "start"}
    assert step_lines(own) == ["<li>bad step 1</li>===>>.data", "<li>bad step 2</li>===>>.data"]
    assert own[-1] == {
        "status": "stop",
        "state": "failed",
        "error": "ValueError: step 2 went wrong",
    }
    # Pytigon's plain subscription keeps its meaning: the stream's newest run
    plain = await follow(pages, {"id": "steps__x"})
    assert step_lines(plain) == [f"<li>good step {n}</li>===>>.data" for n in (1, 2, 3)]
    assert plain[-1] == {"status": "stop", "state": "success"}
    newest = await follow(pages, {"id": "steps__x", "run": passed})
    assert newest == plain


async def test_a_run_subscription_resumes_after_a_seq(pages: Client) -> None:
    failed, _ = await failed_then_succeeded()
    frames = await follow(pages, {"id": "steps__x", "run": failed, "after": 2})
    assert next(frame["seq"] for frame in frames if frame["status"] == "event") == 3
    assert frames[-1]["state"] == "failed"


async def test_a_run_is_replayed_from_the_store_after_a_restart(
    make_client: ClientFactory,
) -> None:
    first: Client = await make_client(task_modules=[TASKS])
    failed, _ = await failed_then_succeeded("r")
    await first.close()
    again: Client = await make_client(task_modules=[TASKS])
    frames = await follow(again, {"id": "steps__r", "run": failed})
    assert step_lines(frames) == ["<li>bad step 1</li>===>>.data", "<li>bad step 2</li>===>>.data"]
    assert frames[-1]["state"] == "failed"
    page = await text_of(again, f"/tasks/{failed}")
    assert "<li>bad step 1</li>" in page and "good step" not in page


async def test_a_queued_run_gets_its_own_events_not_the_kept_previous_run_s(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client(task_modules=[TASKS], max_concurrency=1)
    previous = tasks.async_task(STEPS, count=2, label="old ", task_publish_id="q")
    await tasks.wait_task(previous, timeout=10)
    blocker = tasks.async_task(f"{TASKS}.hold")
    queued = tasks.async_task(STEPS, count=2, label="new ", task_publish_id="q")
    assert app_runner(client).get(queued).status.value == "queued"  # type: ignore[union-attr]
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "steps__q", "run": queued})
    await ws.send_json({"ping": 1})
    frames = [await next_frame(ws)]
    while frames[-1] != {"status": "pong"}:  # the run's start may come first: it is queued
        frames.append(await next_frame(ws))
    assert app_runner(client).cancel(blocker)
    frames += await read_until_closed(ws)
    assert step_lines(frames) == ["<li>new step 1</li>===>>.data", "<li>new step 2</li>===>>.data"]
    assert frames[-1] == {"status": "stop", "state": "success"}


async def test_a_run_cancelled_while_queued_gets_start_and_stop(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client(task_modules=[TASKS], max_concurrency=1)
    blocker = tasks.async_task(f"{TASKS}.hold")
    queued = tasks.async_task(STEPS, task_publish_id="c")
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "steps__c", "run": queued})
    await ws.send_json({"ping": 1})
    assert await next_frame(ws) == {"status": "pong"}
    assert app_runner(client).cancel(queued)
    frames = await read_until_closed(ws)
    assert frames[0] == {"status": "start"} and frames[-1]["state"] == "cancelled"
    assert event_data(frames) == []
    app_runner(client).cancel(blocker)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"id": "steps__x", "run": 5}, 1003),
        ({"id": "steps__x", "run": ""}, 1003),
        ({"id": "steps__x", "run": "0" * 32}, 1008),
        ({"id": "steps__other", "run": "FAILED"}, 1003),
    ],
)
async def test_bad_run_frames_close_with_a_reason(
    pages: Client, frame: dict[str, Any], code: int
) -> None:
    failed, _ = await failed_then_succeeded()
    if frame["run"] == "FAILED":
        frame = {**frame, "run": failed}
    ws = await pages.ws_connect(CHANNEL)
    await ws.send_json(frame)
    message = await ws.receive(timeout=10)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == code and message.extra


async def test_a_run_hidden_by_the_policy_is_refused(make_client: ClientFactory) -> None:
    class Hidden(OpenAccess):
        def can_see(self, user: str | None, record: TaskRecord) -> bool:
            return record.started_by is not None

    client: Client = await make_client(task_modules=[TASKS], access=Hidden())
    failed, _ = await failed_then_succeeded()
    ws = await client.ws_connect(CHANNEL)
    await ws.send_json({"id": "steps__x", "run": failed})
    assert (await ws.receive(timeout=10)).type is aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1008
    for path in ("", "/output.txt", "/traceback.txt", "/result.json"):
        await text_of(client, f"/tasks/{failed}{path}", 404)
    assert (await client.post(f"/tasks/{failed}/again")).status == 404


# -- the page ---------------------------------------------------------------------------------


async def test_a_failed_task_page_has_a_headline_a_trimmed_traceback_and_its_own_output(
    pages: Client,
) -> None:
    failed, passed = await failed_then_succeeded()
    body = await text_of(pages, f"/tasks/{failed}")
    headline = re.search(r'<h2 id="failure-heading".*?</h2>', body, re.S)
    assert headline is not None
    assert '<span class="failure-exception">ValueError</span>' in headline[0]
    assert "step 2 went wrong" in headline[0]
    traceback = re.search(r'<details class="traceback">.*?<pre>(.*?)</pre>', body, re.S)
    assert traceback is not None and "open" not in traceback[0].split(">")[0]
    text = html.unescape(traceback[1])
    assert "task_page_tasks.py" in text and "ValueError: step 2 went wrong" in text
    assert "/taskcast/" not in text and "concurrent/futures" not in text
    # the server-rendered output is this run's, as text, for pages without JavaScript
    log = re.search(r'<ol class="log-static" id="log-static">(.*?)</ol>', body, re.S)
    assert log is not None and log[1] == "<li>bad step 1</li><li>bad step 2</li>"
    assert f'run_id="{failed}"' in body and 'task_id="steps__x"' in body
    assert '<button class="primary">Retry</button>' in body
    assert f'action="/tasks/{failed}/again"' in body
    # the record and the output box say the same, with the same look
    assert body.count('class="pill pill-fail" data-status="failed"') == 3
    box = re.search(r'<span id="output-state" class="output-state">(.*?)</span></span>', body, re.S)
    assert box is not None and "Failed" in box[1] and "finished" not in box[1]
    good = await text_of(pages, f"/tasks/{passed}")
    assert '<button class="secondary">Run again</button>' in good
    assert 'id="failure"' in good and 'id="failure-heading"' not in good
    assert "<li>good step 3</li>" in good and "bad step" not in good


async def test_times_are_time_tags_and_the_live_regions_are_marked(pages: Client) -> None:
    _, passed = await failed_then_succeeded()
    body = await text_of(pages, f"/tasks/{passed}")
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+" data-style="clock"', body)
    assert 'id="run-status" role="status" aria-live="polite"' in body
    assert re.search(r'<ptig-task id="task-output" hidden aria-live="polite"', body)
    levels = [int(level) for level in re.findall(r"<h([1-6])", body)]
    assert levels[0] == 1 and all(b - a <= 1 for a, b in itertools.pairwise(levels))


async def test_a_task_without_a_stream_says_so(pages: Client) -> None:
    task_id = tasks.async_task(f"{TASKS}.add", 1, b=2)
    await tasks.wait_task(task_id, timeout=10)
    body = await text_of(pages, f"/tasks/{task_id}")
    assert "This task has no output stream." in body and "<ptig-task" not in body
    await text_of(pages, f"/tasks/{task_id}/output.txt", 404)


# -- downloads ----------------------------------------------------------------------------------


async def test_downloads_are_files_or_404(pages: Client) -> None:
    failed, passed = await failed_then_succeeded()
    output = await pages.get(f"/tasks/{passed}/output.txt")
    assert output.status == 200 and output.content_type == "text/plain"
    assert output.headers["Content-Disposition"] == f'attachment; filename="{passed}-output.txt"'
    assert await output.text() == "good step 1\ngood step 2\ngood step 3\n"
    result = await pages.get(f"/tasks/{passed}/result.json")
    assert result.status == 200 and result.content_type == "application/json"
    assert "attachment" in result.headers["Content-Disposition"]
    assert json.loads(await result.text()) == 3
    traceback = await pages.get(f"/tasks/{failed}/traceback.txt")
    assert traceback.status == 200
    assert traceback.headers["Content-Disposition"].endswith(f'"{failed}-traceback.txt"')
    assert (await traceback.text()).rstrip().endswith("ValueError: step 2 went wrong")
    assert await text_of(pages, f"/tasks/{failed}/output.txt") == "bad step 1\nbad step 2\n"
    await text_of(pages, f"/tasks/{failed}/result.json", 404)
    await text_of(pages, f"/tasks/{passed}/traceback.txt", 404)
    for path in ("output.txt", "result.json", "traceback.txt"):
        await text_of(pages, f"/tasks/{'0' * 32}/{path}", 404)


async def test_a_result_object_downloads_as_json(pages: Client) -> None:
    task_id = tasks.async_task(f"{TASKS}.add", 2, b=5)
    await tasks.wait_task(task_id, timeout=10)
    assert json.loads(await text_of(pages, f"/tasks/{task_id}/result.json")) == {"sum": 7}


# -- actions ----------------------------------------------------------------------------------


async def test_run_again_starts_the_same_call_and_goes_to_its_page(pages: Client) -> None:
    failed, _ = await failed_then_succeeded()
    response = await pages.post(f"/tasks/{failed}/again", allow_redirects=False)
    assert response.status == 303
    new_id = response.headers["Location"].removeprefix("/tasks/")
    assert new_id != failed
    record = await tasks.wait_task(new_id, timeout=10)
    old = app_runner(pages).get(failed)
    assert old is not None
    assert record.func == old.func and record.kwargs == old.kwargs
    assert record.stream_id == "steps__x" and record.status.value == "failed"


async def test_run_again_is_refused_cross_site_and_for_unregistered_functions(
    pages: Client,
) -> None:
    failed, _ = await failed_then_succeeded()
    evil = {"Origin": "http://evil.example"}
    assert (await pages.post(f"/tasks/{failed}/again", headers=evil)).status == 403
    direct = tasks.async_task("tests.support.sample_tasks.async_fail", "nope")
    await tasks.wait_task(direct, timeout=10)
    assert "again-form" not in await text_of(pages, f"/tasks/{direct}")
    assert (await pages.post(f"/tasks/{direct}/again")).status == 403


async def test_run_again_of_a_running_stream_is_a_conflict(pages: Client) -> None:
    done = tasks.async_task(STEPS, count=1, task_publish_id="busy")
    await tasks.wait_task(done, timeout=10)
    running = tasks.async_task(STEPS, count=50, delay=0.2, task_publish_id="busy")
    response = await pages.post(f"/tasks/{done}/again")
    assert response.status == 409 and "busy" in await response.text()
    assert app_runner(pages).cancel(running)


async def test_cancel_redirects_to_the_page_which_shows_it_cancelled(pages: Client) -> None:
    held = tasks.async_task(f"{TASKS}.hold")
    assert 'id="cancel-form"' in await text_of(pages, f"/tasks/{held}")
    response = await pages.post(f"/tasks/{held}/cancel", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/tasks/{held}"
    await tasks.wait_task(held, timeout=10)
    body = await text_of(pages, f"/tasks/{held}")
    assert 'data-status="cancelled"' in body and 'id="cancel-form"' not in body
    assert '<button class="secondary">Run again</button>' in body

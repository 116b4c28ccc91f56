"""The task list page: pills and times, search, sorting, paging, bulk cancel of queued tasks,
purge with a confirmation, statistics per function, and the live counters and progress."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest

from taskcast import tasks
from taskcast.errors import StoreError
from taskcast.records import TaskRecord, TaskStatus
from taskcast.web.activity import parse_progress, progress_of
from taskcast.web.keys import HUB
from tests.conftest import ClientFactory, app_runner
from tests.support.eventually import eventually
from tests.support.pages import Client, text_of

TASKS = "tests.support.console_tasks"
SAMPLES = "tests.support.sample_tasks"


@pytest.fixture
async def console(make_client: ClientFactory) -> Client:
    client: Client = await make_client(task_modules=[TASKS])
    return client


@pytest.fixture
async def one_at_a_time(make_client: ClientFactory) -> Client:
    """One task runs at a time: the others queue behind it."""
    client: Client = await make_client(task_modules=[TASKS], max_concurrency=1)
    return client


def row_ids(body: str) -> list[str]:
    return re.findall(r'<tr data-task-id="([0-9a-f]+)"', body)


def save_finished(
    client: Client, n: int, func: str, seconds: float, status: TaskStatus, ago: timedelta
) -> str:
    """A finished record written straight to the app's store, as an older run would be."""
    stopped = datetime.now(UTC) - ago
    record = TaskRecord(
        id=f"{n:032x}",
        name=f"old {n}",
        func=func,
        status=status,
        enqueued=stopped - timedelta(seconds=seconds + 1),
        started=stopped - timedelta(seconds=seconds),
        stopped=stopped,
    )
    app_runner(client).store.save_task(record)
    return record.id


async def test_rows_show_pills_times_and_a_cut_stream_newest_first(console: Client) -> None:
    first = tasks.async_task(f"{TASKS}.multiply", 2, group="math")
    second = tasks.async_task(f"{SAMPLES}.async_fail", "bad")
    streamed = tasks.async_task(f"{TASKS}.count_rows", rows=1, task_publish_id="x" * 60)
    for task_id in (first, second, streamed):
        await tasks.wait_task(task_id, timeout=10)
    body = await text_of(console, "/")
    assert row_ids(body) == [streamed, second, first]
    assert 'class="pill pill-fail" data-status="failed"' in body
    assert 'class="pill pill-ok" data-status="success"' in body
    # id and name in one cell, linking to the task's page
    assert re.search(
        rf'<a href="/tasks/{first}" class="task-link"><code class="short-id">{first[:8]}</code> '
        r'<span class="task-name">[^<]+</span></a>',
        body,
    )
    assert re.search(r'<time datetime="[^"]+" data-style="relative"', body)
    assert f'<code class="cut" title="rows__{"x" * 60}">' in body
    only_failed = await text_of(console, "/?status=failed")
    assert row_ids(only_failed) == [second]
    assert row_ids(await text_of(console, "/?group=math")) == [first]
    assert row_ids(await text_of(console, f"/?func={TASKS}.multiply")) == [first]


async def test_search_finds_id_prefix_name_function_and_arguments(console: Client) -> None:
    report = tasks.async_task(f"{SAMPLES}.async_identity", "invoice-2024", task_name="Nightly")
    mail = tasks.async_task(f"{TASKS}.multiply", 21, b=1000003)
    for task_id in (report, mail):
        await tasks.wait_task(task_id, timeout=10)
    assert row_ids(await text_of(console, "/?q=nightly")) == [report]
    assert row_ids(await text_of(console, "/?q=INVOICE-20")) == [report]
    assert row_ids(await text_of(console, "/?q=1000003")) == [mail]
    assert row_ids(await text_of(console, "/?q=console_tasks.mult")) == [mail]
    assert row_ids(await text_of(console, f"/?q={report[:6]}")) == [report]
    nothing = await text_of(console, "/?q=no-such-thing")
    assert row_ids(nothing) == [] and "No tasks match" in nothing
    # the search stays in the form and in the sort and page links
    sorted_search = await text_of(console, "/?q=nightly&sort=name")
    assert 'name="q" value="nightly"' in sorted_search
    assert 'href="/?q=nightly&amp;sort=took&amp;dir=desc"' in sorted_search


async def test_sort_by_each_column_both_ways_from_the_url(console: Client) -> None:
    quick = tasks.async_task(f"{SAMPLES}.async_identity", 1, task_name="beta")
    await tasks.wait_task(quick, timeout=10)
    slow = tasks.async_task(f"{SAMPLES}.async_sleep_for", 0.3, task_name="Alpha")
    await tasks.wait_task(slow, timeout=10)
    assert row_ids(await text_of(console, "/")) == [slow, quick]
    assert row_ids(await text_of(console, "/?sort=queued&dir=asc")) == [quick, slow]
    assert row_ids(await text_of(console, "/?sort=name&dir=asc")) == [slow, quick]
    assert row_ids(await text_of(console, "/?sort=name&dir=desc")) == [quick, slow]
    assert row_ids(await text_of(console, "/?sort=took&dir=desc")) == [slow, quick]
    assert row_ids(await text_of(console, "/?sort=took&dir=asc")) == [quick, slow]
    for column in ("started", "finished", "status"):
        assert set(row_ids(await text_of(console, f"/?sort={column}&dir=asc"))) == {quick, slow}
    by_name = await text_of(console, "/?sort=name&dir=asc")
    # the current column is marked and its link turns the order round; the others start fresh
    assert re.search(r'aria-sort="ascending"><a href="/\?sort=name&amp;dir=desc"', by_name)
    assert 'aria-sort="none"><a href="/?sort=took&amp;dir=desc"' in by_name
    assert 'aria-sort="none"><a href="/?sort=status&amp;dir=asc"' in by_name
    assert 'data-live="no"' in by_name  # new tasks would not belong at the top


async def test_list_pages_fifty_at_a_time(console: Client) -> None:
    ids = [tasks.async_task(f"{SAMPLES}.async_identity", n) for n in range(55)]
    for task_id in ids:
        await tasks.wait_task(task_id, timeout=10)
    first_page = await text_of(console, "/")
    assert "page 1 of 2" in first_page and 'rel="next"' in first_page
    assert ids[-1][:8] in first_page and ids[0][:8] not in first_page
    second_page = await text_of(console, "/?page=2")
    assert ids[0][:8] in second_page and 'rel="prev"' in second_page
    oldest_first = await text_of(console, "/?sort=queued&dir=asc")
    assert 'href="/?dir=asc&amp;page=2" rel="next"' in oldest_first


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=bogus", "status must be one of"),
        ("sort=rowid", "sort must be one of queued, started"),
        ("dir=up", "dir must be asc or desc"),
        ("page=0", "page must be a whole number from 1"),
        ("page=%EF%BC%91", "page must be a whole number"),
        ("q=" + "x" * 201, "q must be at most 200 characters"),
        ("group=" + "g" * 201, "group must be at most 200 characters"),
        ("cancelled=-1", "cancelled must be a whole number"),
    ],
)
async def test_bad_list_input_is_a_400_that_says_why(
    console: Client, query: str, message: str
) -> None:
    body = await text_of(console, f"/?{query}", 400)
    assert message in html.unescape(body)


async def test_bulk_cancel_cancels_queued_tasks_and_leaves_the_others(
    one_at_a_time: Client,
) -> None:
    done = tasks.async_task(f"{TASKS}.multiply", 2)
    await tasks.wait_task(done, timeout=10)
    running = tasks.async_task(f"{TASKS}.slow_async")
    waiting = [tasks.async_task(f"{TASKS}.multiply", n) for n in range(3)]
    runner = app_runner(one_at_a_time)
    await eventually(lambda: runner.running_count == 1, what="the slow task running")
    body = await text_of(one_at_a_time, "/")
    # only the queued rows can be ticked
    ticks = re.findall(r'<input type="checkbox" name="id" value="([0-9a-f]+)"', body)
    assert sorted(ticks) == sorted(waiting)
    response = await one_at_a_time.post(
        "/tasks/cancel",
        data=[("id", waiting[0]), ("id", waiting[1]), ("id", running), ("id", done)],
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/?cancelled=2&skipped=2"
    for task_id in waiting[:2]:
        assert (await tasks.wait_task(task_id, timeout=10)).status is TaskStatus.CANCELLED
    assert runner.get(running).status is TaskStatus.RUNNING  # type: ignore[union-attr]
    assert runner.get(done).status is TaskStatus.SUCCESS  # type: ignore[union-attr]
    assert runner.get(waiting[2]).status is TaskStatus.QUEUED  # type: ignore[union-attr]
    notice = await text_of(one_at_a_time, response.headers["Location"])
    assert "Cancelled 2 queued tasks." in notice and "Left 2 alone" in notice
    assert runner.cancel(running)


async def test_bulk_cancel_refuses_nothing_ticked_too_many_and_other_sites(
    one_at_a_time: Client,
) -> None:
    empty = await one_at_a_time.post("/tasks/cancel", data={})
    assert empty.status == 400 and "tick at least one queued task" in await empty.text()
    many = await one_at_a_time.post("/tasks/cancel", data=[("id", "x")] * 501)
    assert many.status == 400 and "at most 500" in await many.text()
    running = tasks.async_task(f"{TASKS}.slow_async")
    waiting = tasks.async_task(f"{TASKS}.multiply", 1)
    evil = await one_at_a_time.post(
        "/tasks/cancel", data={"id": waiting}, headers={"Origin": "http://evil.example"}
    )
    assert evil.status == 403
    runner = app_runner(one_at_a_time)
    assert runner.get(waiting).status is TaskStatus.QUEUED  # type: ignore[union-attr]
    assert runner.cancel(running) and runner.cancel(waiting)


async def test_purge_asks_first_then_deletes_old_finished_records_only(
    one_at_a_time: Client,
) -> None:
    old = [
        save_finished(one_at_a_time, n, "a.f", 1, TaskStatus.SUCCESS, timedelta(days=10))
        for n in range(3)
    ]
    recent = save_finished(one_at_a_time, 9, "a.f", 1, TaskStatus.FAILED, timedelta(hours=1))
    running = tasks.async_task(f"{TASKS}.slow_async")
    waiting = tasks.async_task(f"{TASKS}.multiply", 1)
    confirm = await text_of(one_at_a_time, "/purge?older=7d")
    assert "<strong>3</strong> finished task records" in confirm
    assert 'name="confirm" value="yes"' in confirm and 'action="/purge"' in confirm
    unconfirmed = await one_at_a_time.post("/purge", data={"older": "7d"})
    assert unconfirmed.status == 400 and "confirm the purge" in await unconfirmed.text()
    bad_age = await one_at_a_time.post("/purge", data={"older": "soon", "confirm": "yes"})
    assert bad_age.status == 400 and "older: a window is" in await bad_age.text()
    runner = app_runner(one_at_a_time)
    assert all(runner.get(task_id) is not None for task_id in old)  # refused: nothing gone
    done = await one_at_a_time.post(
        "/purge", data={"older": "7d", "confirm": "yes"}, allow_redirects=False
    )
    assert done.status == 303 and done.headers["Location"] == "/?purged=3"
    assert "Purged 3 finished task records." in await text_of(one_at_a_time, "/?purged=3")
    assert all(runner.get(task_id) is None for task_id in old)
    assert runner.get(recent) is not None
    assert runner.get(running).status is TaskStatus.RUNNING  # type: ignore[union-attr]
    assert runner.get(waiting).status is TaskStatus.QUEUED  # type: ignore[union-attr]
    # even a purge of everything finished leaves the running and queued tasks alone
    await one_at_a_time.post("/purge", data={"older": "1m", "confirm": "yes"})
    assert runner.get(running) is not None and runner.get(waiting) is not None
    assert runner.cancel(running) and runner.cancel(waiting)


async def test_a_purge_the_store_refuses_is_a_503_that_says_nothing_went(
    console: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*_: object) -> int:
        raise StoreError("store: could not purge the finished tasks")

    monkeypatch.setattr(app_runner(console).store, "purge_finished", refuse)
    response = await console.post("/purge", data={"older": "7d", "confirm": "yes"})
    assert response.status == 503
    assert "nothing was purged: the database refused it" in await response.text()
    assert "purge of the tasks finished before" in caplog.text


async def test_statistics_give_counts_failure_rate_and_percentiles(console: Client) -> None:
    for n, seconds in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]):
        status = TaskStatus.FAILED if n in (2, 6) else TaskStatus.SUCCESS
        save_finished(console, n, "a.work", seconds, status, timedelta(minutes=5))
    save_finished(console, 20, "a.work", 100, TaskStatus.SUCCESS, timedelta(hours=3))
    save_finished(console, 21, "b.other", 90, TaskStatus.CANCELLED, timedelta(minutes=5))
    body = await text_of(console, "/stats?window=1h")

    def stat(func: str, name: str) -> str:
        row = re.search(rf'<tr data-func="{re.escape(func)}">(.*?)</tr>', body, re.DOTALL)
        assert row is not None, f"no row for {func}"
        found = re.search(rf'data-stat="{name}">([^<]*)<', row.group(1))
        assert found is not None
        return found.group(1)

    assert [stat("a.work", n) for n in ("runs", "succeeded", "failed", "cancelled")] == [
        "10",
        "8",
        "2",
        "0",
    ]
    assert stat("a.work", "failure_rate") == "20.0%"
    assert stat("a.work", "p50") == "5.00 s" and stat("a.work", "p95") == "10.00 s"
    assert stat("b.other", "cancelled") == "1" and stat("b.other", "p95") == "1 min 30 s"
    wider = await text_of(console, "/stats?window=24h")
    assert 'data-stat="runs">11<' in wider and 'aria-current="page">24h<' in wider
    assert "Statistics per function" in await text_of(console, "/stats")
    for bad in ("1y", "0h", "abc", "400d"):
        assert "window: a window is" in await text_of(console, f"/stats?window={bad}", 400)


async def test_activity_tells_counts_why_tasks_wait_and_progress(one_at_a_time: Client) -> None:
    rows = tasks.async_task(f"{TASKS}.count_rows", rows=400, delay=0.05, task_publish_id="p")
    waiting = tasks.async_task(f"{TASKS}.multiply", 1)
    runner, hub = app_runner(one_at_a_time), one_at_a_time.app[HUB]

    def reported_progress() -> object:
        record = runner.get(rows)
        return record is not None and progress_of(hub, record) is not None

    await eventually(reported_progress, timeout=10, what="the task's first progress")
    response = await one_at_a_time.get("/api/activity", params=[("id", rows), ("id", "x")])
    progress = await response.json()
    assert progress["running"] == 1 and progress["queued"] == 1
    assert "max_concurrency" in progress["waiting"]
    reported = progress["progress"][rows]
    assert 0 < reported["value"] < 400 and reported["max"] == 400
    assert "%" in reported["text"] and "rows" in reported["text"]
    assert set(progress["progress"]) == {rows}  # an unknown id is left out
    # the list shows the same progress on the running row, as a named bar
    body = await text_of(one_at_a_time, "/")
    assert re.search(r'<progress value="[0-9.]+" max="400.0" aria-label="Progress of ', body)
    assert "1 queued: the overall limit is reached (max_concurrency = 1, --max-concurrency)" in body
    too_many = await one_at_a_time.get("/api/activity", params=[("id", "x")] * 101)
    assert too_many.status == 400 and "at most 100" in (await too_many.json())["detail"]
    assert runner.cancel(rows) and runner.cancel(waiting)


async def test_feed_frames_carry_the_counters(one_at_a_time: Client) -> None:
    ws = await one_at_a_time.ws_connect("/api/feed")
    running = tasks.async_task(f"{TASKS}.slow_async")
    waiting = tasks.async_task(f"{TASKS}.multiply", 1)
    seen: list[dict[str, int]] = []
    while {"running": 1, "queued": 1} not in seen:
        frame = await ws.receive_json(timeout=10)
        seen.append(frame["counts"])
    runner = app_runner(one_at_a_time)
    assert runner.cancel(running)
    while seen[-1] != {"running": 0, "queued": 0}:
        frame = await ws.receive_json(timeout=10)
        seen.append(frame["counts"])
    assert (await tasks.wait_task(waiting, timeout=10)).status is TaskStatus.SUCCESS
    await ws.close()


@pytest.mark.parametrize(
    ("limit", "func", "expected"),
    [
        (
            {"process_workers": 1},
            "slow",
            "1 queued: every process worker is busy (process_workers = 1, --workers)",
        ),
        (
            {"max_async_tasks": 1},
            "slow_async",
            "1 queued: the limit of async tasks is reached (max_async_tasks = 1, --max-async)",
        ),
    ],
)
async def test_tasks_waiting_for_a_limit_name_it_and_its_flag(
    make_client: ClientFactory, limit: dict[str, int], func: str, expected: str
) -> None:
    client: Client = await make_client(task_modules=[TASKS], **limit)
    busy = tasks.async_task(f"{TASKS}.{func}")
    waiting = tasks.async_task(f"{TASKS}.{func}")
    runner = app_runner(client)
    await eventually(lambda: runner.running_count == 1 and runner.queue_size == 1, timeout=10)
    body = await (await client.get("/api/activity")).json()
    assert body["waiting"] == expected
    assert expected in await text_of(client, "/")
    assert runner.cancel(waiting) and runner.cancel(busy)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            "<progress value='3' max='4'></progress><span class='ptig-progress-text'>75% · "
            "a &amp; b</span>===>.ptig-progress",
            {"value": 3.0, "max": 4.0, "text": "75% · a & b"},
        ),
        ('<progress max="10" value="2.5">', {"value": 2.5, "max": 10.0, "text": "25%"}),
        ("<progress></progress>", {"value": None, "max": 1.0, "text": ""}),
        ("<p>no bar here</p>", None),
    ],
)
def test_progress_is_read_from_what_tasks_send(event: str, expected: object) -> None:
    assert parse_progress(event) == expected

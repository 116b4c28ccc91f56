"""The schedules page for people: rules in words with the raw rule on hover, the zone named,
Delete that asks first (a page of its own without JavaScript), what deleting a schedule defined
in code means, and a "run now" notice that links to the task it started."""

from __future__ import annotations

import re
import uuid

from aiohttp import web
from aiohttp.test_utils import TestClient

from taskcast.schedules.helpers import daily
from taskcast.schedules.rules import Cron
from taskcast.web.keys import SCHEDULER
from taskcast.web.security import OpenAccess
from tests.conftest import ClientFactory, app_runner

T = "tests.support.sample_tasks."
CODED = "tests.support.coded_schedules"
CODED_NAME = T + "note_run"
Client = TestClient[web.Request, web.Application]


async def page(client: Client, path: str = "/schedules", status: int = 200) -> str:
    response = await client.get(path)
    text = await response.text()
    assert response.status == status, text
    return text


async def test_rules_read_in_words_with_the_raw_rule_on_hover_and_the_zone_named(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client(timezone="Europe/Warsaw")
    scheduler = client.app[SCHEDULER]
    scheduler.schedule(T + "note_run", "a", name="standup", rule=daily(at="9:30", in_weekdays=[0]))
    scheduler.schedule(T + "note_run", "b", name="quarter", rule=Cron("15 * * * *"))
    text = await page(client)
    assert re.search(
        r"Schedules run on <strong>Europe/Warsaw \(UTC\+0[12]:00 now\)</strong> time", text
    )
    assert '<span class="rule" title="cron: 15 * * * *">every hour at :15</span>' in text
    assert (
        '<span class="rule" title="{&#34;kind&#34;: &#34;times&#34;, &#34;times&#34;: [34200], '
        '&#34;weekdays&#34;: [0], &#34;clock&#34;: false}">every Monday at 09:30</span>'
    ) in text
    entry = scheduler.get("standup")
    assert entry.next_run is not None
    shown = entry.next_run.astimezone(scheduler.tz).strftime("%Y-%m-%d 09:30")
    assert f"<time>{shown}</time>" in text
    listed = await (await client.get("/api/schedules")).json()
    assert {item["name"]: item["rule"] for item in listed["schedules"]} == {
        "quarter": "every hour at :15",
        "standup": "every Monday at 09:30",
    }


async def test_delete_asks_on_a_page_of_its_own_then_deletes(make_client: ClientFactory) -> None:
    client: Client = await make_client(timezone="UTC")
    scheduler = client.app[SCHEDULER]
    scheduler.schedule(T + "note_run", "c", name="<b>nightly", rule=daily(at="2:30"))
    listing = await page(client)
    assert 'href="/schedules/%3Cb%3Enightly/delete"' in listing
    # the list's link is the question, not the deletion
    assert 'method="post" action="/schedules/%3Cb%3Enightly/delete"' not in listing
    question = await page(client, "/schedules/%3Cb%3Enightly/delete")
    assert 'Delete schedule <span class="name">&lt;b&gt;nightly</span>?' in question
    assert 'method="post" action="/schedules/%3Cb%3Enightly/delete"' in question
    assert "once deleted, it is gone" in question and 'href="/schedules">Keep it</a>' in question
    assert "<b>nightly" in scheduler.entries
    response = await client.post("/schedules/%3Cb%3Enightly/delete", allow_redirects=False)
    assert response.status == 303 and "<b>nightly" not in scheduler.entries
    after = await page(client, response.headers["Location"])
    assert '<p class="notice">&lt;b&gt;nightly deleted</p>' in after
    await page(client, "/schedules/nope/delete", 404)


async def test_a_schedule_defined_in_code_says_it_returns_after_delete(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client(timezone="UTC", task_modules=[CODED])
    scheduler = client.app[SCHEDULER]
    returns = f"defined in code ({CODED}.init_schedule): it returns at the next start"
    listing = await page(client)
    assert f'data-returns="{returns}"' in listing and f'title="{returns}">in code</span>' in listing
    assert "every hour at :15" in listing
    question = await page(client, f"/schedules/{CODED_NAME}/delete")
    assert f"It is {returns}." in question
    response = await client.post(f"/schedules/{CODED_NAME}/delete")
    assert response.status == 200 and CODED_NAME not in scheduler.entries
    assert f"{CODED_NAME} deleted; it is {returns}" in await response.text()


async def test_run_now_links_its_notice_to_the_task_it_started(make_client: ClientFactory) -> None:
    client: Client = await make_client(timezone="UTC")
    scheduler = client.app[SCHEDULER]
    scheduler.schedule(T + "note_run", uuid.uuid4().hex, name="nightly", rule=daily(at="2:30"))
    response = await client.post("/schedules/nightly/run", allow_redirects=False)
    assert response.status == 303
    task_id = scheduler.get("nightly").last_task
    assert task_id is not None
    assert response.headers["Location"] == f"/schedules?started={task_id}&schedule=nightly"
    text = await page(client, response.headers["Location"])
    assert f'Started <a href="/tasks/{task_id}">task {task_id[:8]}</a> from nightly' in text
    await app_runner(client).wait(task_id, timeout=10)
    # only a task id becomes a link; anything else in the query is dropped
    forged = await page(client, "/schedules?started=javascript:alert(1)&schedule=x")
    assert "Started" not in forged and "javascript:" not in forged


async def test_pause_and_resume_say_what_they_did(make_client: ClientFactory) -> None:
    client: Client = await make_client(timezone="UTC")
    client.app[SCHEDULER].schedule(T + "note_run", "d", name="nightly", rule=daily(at="2:30"))
    paused = await client.post("/schedules/nightly/pause")
    text = await paused.text()
    assert '<p class="notice">nightly paused</p>' in text and 'pill-warn">paused</span>' in text
    resumed = await client.post("/schedules/nightly/resume")
    assert '<p class="notice">nightly resumed</p>' in await resumed.text()


class LookOnly(OpenAccess):
    """Everyone may look at schedules; nobody may change them."""

    def can_manage_schedules(self, user: str | None) -> bool:
        return False


async def test_people_who_may_not_manage_schedules_see_no_actions(
    make_client: ClientFactory,
) -> None:
    client: Client = await make_client(timezone="UTC", access=LookOnly())
    client.app[SCHEDULER].schedule(T + "note_run", "e", name="nightly", rule=daily(at="2:30"))
    text = await page(client)
    assert "every day at 02:30" in text
    assert "Delete…" not in text and "Run now" not in text and ">Actions<" not in text
    await page(client, "/schedules/nightly/delete", 403)

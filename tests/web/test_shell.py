"""The shell around every page, as the server renders it: the navigation and its current
section, the demo link only where the demo is mounted, the sign-in page, error pages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp import web

from taskcast.web.embed import setup
from tests.conftest import ClientFactory

TOKEN = "shell-token-1"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def marked(body: str) -> list[str]:
    """The labels of the navigation's links marked as the current page."""
    nav = re.search(r'<nav class="site-nav" aria-label="Main">(.*?)</nav>', body, re.S)
    assert nav is not None, "no main navigation"
    return re.findall(r'<a href="[^"]*" aria-current="page">([^<]+)</a>', nav.group(1))


async def test_the_navigation_marks_the_section_of_the_page(make_client: ClientFactory) -> None:
    client = await make_client()
    for path, section in [
        ("/", "Tasks"),
        ("/stats", "Tasks"),
        ("/purge", "Tasks"),
        ("/registry", "Start a task"),
        ("/schedules", "Schedules"),
        ("/demo", "Demo"),
        ("/demo/tour", "Demo"),
    ]:
        body = await (await client.get(path)).text()
        assert '<nav class="site-nav" aria-label="Main">' in body, path
        assert marked(body) == [section], path
        assert '<a class="skip-link" href="#content">' in body
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in body
    icon = await client.get("/static/favicon.svg")
    assert icon.status == 200 and icon.content_type == "image/svg+xml"


async def test_embedded_there_is_no_demo_and_no_link_to_it(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    app = web.Application()
    setup(app, database=str(tmp_path / "embedded.sqlite3"), process_workers=1)
    client = await aiohttp_client(app)
    body = await (await client.get("/taskcast/registry")).text()
    assert marked(body) == ["Start a task"]
    assert 'href="/taskcast/registry"' in body and 'href="/taskcast/demo"' not in body
    assert (await client.get("/taskcast/demo")).status == 404
    assert (await client.post("/taskcast/demo/start", data={"task_publish_id": "x1"})).status == 404


async def test_the_sign_in_page_has_no_navigation_and_keeps_next(
    make_client: ClientFactory,
) -> None:
    client = await make_client(auth_token=TOKEN)
    form = await (await client.get("/login", params={"next": "/schedules"})).text()
    assert "site-nav" not in form and 'name="next" value="/schedules"' in form
    wrong = await client.post("/login", data={"token": "nope", "next": "/schedules"})
    body = await wrong.text()
    assert wrong.status == 401 and "That access token is not right" in body
    assert 'name="next" value="/schedules"' in body and "site-nav" not in body
    empty = await client.post("/login", data={"token": "", "next": "/schedules"})
    body = await empty.text()
    assert empty.status == 400 and "Enter the access token" in body
    assert 'name="next" value="/schedules"' in body
    # a next that leads elsewhere is not kept
    elsewhere = await client.post("/login", data={"token": "nope", "next": "//evil.example"})
    assert 'name="next" value="/"' in await elsewhere.text()
    signed = await client.post(
        "/login", data={"token": TOKEN, "next": "/schedules"}, allow_redirects=False
    )
    assert signed.status == 303 and signed.headers["Location"] == "/schedules"


async def test_browsers_get_error_pages_and_scripts_their_answers(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    page = await client.get("/no/such/page", headers=HTML)
    body = await page.text()
    assert page.status == 404 and page.content_type == "text/html"
    assert "<h1>Nothing here</h1>" in body and "site-nav" in body
    assert "There is no page at this address" in body and "404: Not Found" not in body
    task = await client.get("/tasks/unknown-id", headers=HTML)
    assert task.status == 404 and marked(await task.text()) == ["Tasks"]
    bad = await client.get("/demo/watch", params={"stream": "no spaces"}, headers=HTML)
    body = await bad.text()
    assert bad.status == 400 and "stream must be 1 to 100 letters" in body
    # scripts and the JSON API answer as before
    plain = await client.get("/no/such/page")
    assert plain.status == 404 and plain.content_type == "text/plain"
    api = await client.get("/api/tasks/unknown-id", headers=HTML)
    assert api.status == 404 and api.content_type == "application/json"

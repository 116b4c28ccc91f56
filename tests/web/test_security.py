"""Who may do what, from a browser's side: where a login may send it, which Host names the
server answers to, and sessions that end when they should."""

from __future__ import annotations

import logging
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from taskcast.web.keys import POLICY
from taskcast.web.login import safe_next
from taskcast.web.security import OpenAccess
from tests.conftest import ClientFactory
from tests.support.wsclient import CHANNEL
from tests.web.test_embed import host_app

Client = TestClient[Any, Any]
TOKEN = "s3cret-token"

HOSTILE_NEXT = [
    "",
    "https://evil.example/",
    "http:/evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "//evil.example/x",
    "/\\evil.example",
    "\\/evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "/ /evil.example",
    "/\x00/evil.example",
    "\t//evil.example",
    " /x",
    "/x y",
    "/%2F/evil.example",
    "/%2f/evil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/\uff0f/evil.example",  # full-width solidus
    "/\uff3cevil.example",  # full-width reverse solidus
    "/\u2215evil.example",  # division slash
    "/\u00a0/evil.example",
    "/\u2028x",
    "/\udcff",
    "evil.example",
    "/" + "a" * 3000,
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_safe_next_refuses_anything_but_a_plain_local_path(target: str) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize(
    "target", ["/", "/registry", "/tasks/abc", "/?status=failed&page=2", "/demo/watch?stream=a:b"]
)
def test_safe_next_keeps_a_plain_local_path(target: str) -> None:
    assert safe_next(target) == target


async def test_login_with_a_tab_in_next_stays_on_this_site(make_client: ClientFactory) -> None:
    client = await make_client(auth_token=TOKEN)
    signed = await client.post(
        "/login", data={"token": TOKEN, "next": "/\t/evil.example"}, allow_redirects=False
    )
    assert signed.status == 303 and signed.headers["Location"] == "/"


# -- Host names (DNS rebinding) -------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io"]
)
async def test_a_foreign_host_name_is_refused(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    client = await make_client(task_modules=["tests.support.console_tasks"])
    caplog.set_level(logging.WARNING, "taskcast.web.security")
    headers = {"Host": host}
    listing = await client.get("/api/tasks", headers=headers)
    assert listing.status == 421
    assert (await listing.json())["error"] == "misdirected_request"
    start = await client.post(
        "/api/tasks", json={"name": "greet", "arguments": {"name": "x"}}, headers=headers
    )
    assert start.status == 421
    page = await client.get("/", headers=headers)
    assert page.status == 421 and "--allowed-host" in await page.text()
    with pytest.raises(Exception) as refused:
        await client.ws_connect(CHANNEL, headers=headers)
    assert getattr(refused.value, "status", None) == 421
    assert f"refused Host {host!r}" in caplog.text


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:1234", "127.0.0.1:9", "[::1]:8080", "[::1]", "10.1.2.3:80"]
)
async def test_loopback_names_and_address_literals_are_answered(
    make_client: ClientFactory, host: str
) -> None:
    client = await make_client()
    assert (await client.get("/api/tasks", headers={"Host": host})).status == 200


async def test_allowed_hosts_adds_names(make_client: ClientFactory) -> None:
    client = await make_client(allowed_hosts=["tasks.example.org"])
    ok = await client.get("/api/tasks", headers={"Host": "tasks.example.org:8443"})
    assert ok.status == 200
    assert (await client.get("/api/tasks", headers={"Host": "evil.example"})).status == 421


async def test_a_star_answers_every_name(make_client: ClientFactory) -> None:
    client = await make_client(allowed_hosts=["*"])
    assert (await client.get("/api/tasks", headers={"Host": "any.example"})).status == 200


async def test_an_embedded_taskcast_checks_the_host_on_its_console_and_its_channel(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client: Client = await aiohttp_client(
        host_app(tmp_path / "e.sqlite3", access=OpenAccess(), allowed_hosts=["app.example"])
    )
    evil = {"Host": "evil.example"}
    assert (await client.get("/", headers=evil)).status == 200  # the host's own route: its call
    assert (await client.get("/taskcast/api/tasks", headers=evil)).status == 421
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(CHANNEL, headers=evil)
    assert refused.value.status == 403  # the channel sits on the host app, past our middleware
    ours = {"Host": "app.example"}
    assert (await client.get("/taskcast/api/tasks", headers=ours)).status == 200
    ws = await client.ws_connect(CHANNEL, headers=ours)
    await ws.close()


# -- sessions -------------------------------------------------------------------------------------


async def sign_in(client: Client) -> str:
    signed = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert signed.status == 303
    return signed.cookies["taskcast_session"].value


async def test_the_session_cookie_is_http_only_lax_site_wide_and_ends(
    make_client: ClientFactory,
) -> None:
    client = await make_client(auth_token=TOKEN, session_seconds=3600)
    signed = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    [header] = signed.headers.getall("Set-Cookie")
    morsel = SimpleCookie(header)["taskcast_session"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["path"] == "/"
    assert morsel["max-age"] == "3600"


async def test_logout_revokes_the_session(make_client: ClientFactory) -> None:
    client = await make_client(auth_token=TOKEN)
    cookie = await sign_in(client)
    # the same cookie kept elsewhere: a copied browser profile, a stolen cookie
    copy = {"Cookie": f"taskcast_session={cookie}"}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as elsewhere:
        url = client.make_url("/api/tasks")
        assert (await elsewhere.get(url, headers=copy)).status == 200
        assert (await client.post("/logout", allow_redirects=False)).status == 303
        assert (await elsewhere.get(url, headers=copy)).status == 401


@pytest.mark.parametrize(
    "forged",
    ["token|99999999999|" + "0" * 64, "token|99999999999|", "x" * 43, "token", "|", ""],
)
async def test_a_forged_session_cookie_is_refused(make_client: ClientFactory, forged: str) -> None:
    client = await make_client(auth_token=TOKEN)
    await sign_in(client)  # a real session exists: the forged one must not match it
    client.session.cookie_jar.clear()
    response = await client.get("/api/tasks", cookies={"taskcast_session": forged})
    assert response.status == 401


async def test_a_tampered_session_cookie_is_refused(make_client: ClientFactory) -> None:
    client = await make_client(auth_token=TOKEN)
    cookie = await sign_in(client)
    client.session.cookie_jar.clear()
    tampered = cookie[:-1] + ("A" if cookie[-1] != "A" else "B")
    assert (await client.get("/api/tasks", cookies={"taskcast_session": tampered})).status == 401
    assert (await client.get("/api/tasks", cookies={"taskcast_session": cookie})).status == 200


async def test_a_session_past_its_expiry_is_refused(make_client: ClientFactory) -> None:
    clock = [1000.0]
    client = await make_client(auth_token=TOKEN, session_seconds=60)
    client.app[POLICY].sessions.clock = lambda: clock[0]
    cookie = await sign_in(client)
    client.session.cookie_jar.clear()
    clock[0] += 59
    assert (await client.get("/api/tasks", cookies={"taskcast_session": cookie})).status == 200
    clock[0] += 2
    assert (await client.get("/api/tasks", cookies={"taskcast_session": cookie})).status == 401
    assert len(client.app[POLICY].sessions) == 0  # and it is gone from the server


async def test_a_restart_with_another_token_ends_old_sessions(make_client: ClientFactory) -> None:
    first = await make_client(auth_token=TOKEN)
    cookie = await sign_in(first)
    await first.close()
    second = await make_client(auth_token="another-token")
    refused = await second.get("/api/tasks", cookies={"taskcast_session": cookie})
    assert refused.status == 401

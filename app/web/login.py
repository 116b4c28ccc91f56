"""The shared-token login: a form, a server-side session behind a cookie, and signing out."""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import unquote

import aiohttp_jinja2
from aiohttp import web

from taskcast.web import params
from taskcast.web.keys import BASE, POLICY, SETTINGS
from taskcast.web.pages import page_context
from taskcast.web.security import COOKIE, TokenAccess

logger = logging.getLogger(__name__)

#: the longest `next` kept; a longer one is no page of ours
MAX_NEXT_CHARS: Final = 2000


def _plain_path(path: str) -> bool:
    """One leading "/", then no "/" or "\\" right after it, no "\\" at all, and only printable
    ASCII without spaces: nothing a browser could read as another host or scheme."""
    return (
        path.startswith("/")
        and not path.startswith(("//", "/\\"))
        and "\\" not in path
        and path.isascii()
        and path.isprintable()
        and " " not in path
    )


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a plain path on this server, never another site.

    Browsers drop tabs and newlines from URLs and read "\\" as "/", so "/<TAB>/evil.example" is
    "//evil.example" to them; the path is checked as sent and once percent-decoded.
    """
    if not target or len(target) > MAX_NEXT_CHARS or not _plain_path(target):
        return "/"
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not _plain_path(unquote(path, errors="replace")):
        return "/"
    return target


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, "", safe_next(request.query.get("next")))


async def login(request: web.Request) -> web.Response:
    """Check the shared token from the form, open a session, and put its id in a cookie."""
    policy = request.app[POLICY]
    form = await params.read_form(request)
    target = safe_next(params.form_text(form, "next"))
    if not isinstance(policy, TokenAccess):
        raise web.HTTPSeeOther(target)
    token = params.form_text(form, "token")
    if not token:
        return _login_page(request, "Enter the access token.", target, status=400)
    if not policy.token_matches(token):
        logger.warning("login: wrong token from %s", request.remote)
        message = "That access token is not right: check it and try again."
        return _login_page(request, message, target, status=401)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE,
        await policy.sessions.open(policy.USER),
        max_age=int(request.app[SETTINGS].session_seconds),
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
    )
    raise response


async def logout(request: web.Request) -> web.Response:
    """End the session on the server (a copy of the cookie stops working too), then drop it."""
    policy = request.app[POLICY]
    session_id = params.cookie(request, COOKIE)
    if isinstance(policy, TokenAccess) and session_id:
        await policy.sessions.close(session_id)
    response = web.HTTPSeeOther(f"{request.app[BASE]}/login")
    response.del_cookie(COOKIE, path="/")
    raise response


def _login_page(request: web.Request, message: str, target: str, status: int = 200) -> web.Response:
    """The form, with what went wrong and where to go after signing in (kept across tries)."""
    context = {**page_context(request), "signed_out": True, "message": message, "next": target}
    return aiohttp_jinja2.render_template("login.html", request, context, status=status)

"""The shared-token login: a form, a signed session cookie, and signing out."""

from __future__ import annotations

import logging

import aiohttp_jinja2
from aiohttp import web
from taskcast.web.keys import BASE, POLICY
from taskcast.web.pages import page_context
from taskcast.web.security import COOKIE, SESSION_SECONDS, TokenAccess

logger = logging.getLogger(__name__)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server, never another site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, "")


async def login(request: web.Request) -> web.Response:
    """Check the shared token from the form and hand out a signed session cookie."""
    policy = request.app[POLICY]
    form = await request.post()
    token = form.get("token")
    target = safe_next(str(form.get("next") or ""))
    if not isinstance(policy, TokenAccess):
        raise web.HTTPSeeOther(target)
    if not isinstance(token, str) or not policy.token_matches(token):
        logger.warning("login: wrong token from %s", request.remote)
        return _login_page(request, "That token is not right.", status=401)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE,
        policy.session_cookie(),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
    )
    raise response


async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther(f"{request.app[BASE]}/login")
    response.del_cookie(COOKIE, path="/")
    raise response


def _login_page(request: web.Request, message: str, status: int = 200) -> web.Response:
    context = {
        **page_context(request),
        "message": message,
        "next": safe_next(request.query.get("next")),
    }
    return aiohttp_jinja2.render_template("login.html", request, context, status=status)

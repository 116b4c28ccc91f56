"""Who may do what: identifying requests, the shared-token login, and cross-site protection.

An `AccessPolicy` decides. `OpenAccess` (no token set, as for a server on 127.0.0.1) lets
everyone do everything; `TokenAccess` requires the shared token, as `Authorization: Bearer` for
scripts or through the login form and a signed cookie for browsers. A host app passes its own
policy to use its own users. Independently of the policy, a state-changing request that a
browser sends from another origin is refused, and so is a websocket from another origin.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Final, Protocol

from aiohttp import hdrs, web
from taskcast.records import TaskRecord
from taskcast.web.errors import Handler, error_response
from taskcast.web.keys import POLICY, SETTINGS, USER, local_path

logger = logging.getLogger(__name__)

COOKIE = "taskcast_session"
SESSION_SECONDS = 7 * 24 * 3600
#: paths anyone may reach: the login form, static files, the health check
PUBLIC_PREFIXES = ("/login", "/static/", "/api/health")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AccessPolicy(Protocol):
    """What a host app implements to plug its own users into Taskcast."""

    #: where a browser without an identity is sent (None: answer 401)
    login_url: str | None

    async def identify(self, request: web.Request) -> str | None:
        """The user making the request, or None when the request is not authenticated."""

    def can_see(self, user: str | None, record: TaskRecord) -> bool:
        """May `user` see this task (list, page, API, events, its stream)?"""

    def can_start(self, user: str | None, task_name: str) -> bool:
        """May `user` start the registered task `task_name`?"""

    def can_cancel(self, user: str | None, record: TaskRecord) -> bool:
        """May `user` cancel this task?"""

    def only_started_by(self, user: str | None) -> str | None:
        """A name when lists should hold only the tasks this name started, else None."""

    def can_manage_schedules(self, user: str | None) -> bool:
        """May `user` pause, resume, run now and delete schedules?"""


class OpenAccess:
    """No authentication: everyone may see, start and cancel everything."""

    login_url: str | None = None

    async def identify(self, request: web.Request) -> str | None:
        return "anonymous"

    def can_see(self, user: str | None, record: TaskRecord) -> bool:
        return True

    def can_start(self, user: str | None, task_name: str) -> bool:
        return True

    def can_cancel(self, user: str | None, record: TaskRecord) -> bool:
        return True

    def only_started_by(self, user: str | None) -> str | None:
        return None

    def can_manage_schedules(self, user: str | None) -> bool:
        return True


class TokenAccess(OpenAccess):
    """One shared token: whoever presents it (header or signed cookie) may do everything."""

    USER: Final = "token"

    def __init__(self, token: str, login_url: str = "/login") -> None:
        self.login_url = login_url
        if len(token) < 8:
            raise ValueError("the auth token must be at least 8 characters long")
        self._token = token.encode()
        self._key = hashlib.sha256(b"taskcast cookie key\0" + self._token).digest()

    def token_matches(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self._token)

    def session_cookie(self, now: float | None = None) -> str:
        expires = int((now or time.time()) + SESSION_SECONDS)
        payload = f"{self.USER}|{expires}"
        return f"{payload}|{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def _cookie_user(self, value: str) -> str | None:
        payload, _, signature = value.rpartition("|")
        user, _, expires = payload.partition("|")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return user

    async def identify(self, request: web.Request) -> str | None:
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and presented:
            return self.USER if self.token_matches(presented.strip()) else None
        cookie = request.cookies.get(COOKIE)
        return self._cookie_user(cookie) if cookie else None


def origin_allowed(request: web.Request) -> bool:
    """The one cross-site check, for writes and websockets alike: browsers send Origin, and
    only the server's own origin and `Settings.allowed_origins` pass."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return True  # not a browser's cross-site request: scripts and tools send no Origin
    own = f"{request.scheme}://{request.host}"
    return origin == own or origin in request.app[SETTINGS].allowed_origins


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse cross-site writes, identify the user, and keep out who is not signed in."""
    if request.method in UNSAFE_METHODS and not origin_allowed(request):
        logger.warning(
            "refused a cross-site %s %s from %s",
            request.method,
            request.path,
            request.headers.get(hdrs.ORIGIN),
        )
        return error_response(request, 403, "forbidden", "cross-site request refused")
    path = local_path(request)
    if path.startswith(PUBLIC_PREFIXES):
        return await handler(request)
    policy = request.app[POLICY]
    user = await policy.identify(request)
    if user is None:
        if path.startswith("/api/") or policy.login_url is None:
            return error_response(
                request,
                401,
                "unauthorized",
                "authentication required (Authorization: Bearer <token>)",
            )
        if request.method == "GET" and request.headers.get(hdrs.UPGRADE) is None:
            raise web.HTTPSeeOther(f"{policy.login_url}?next={request.path_qs}")
        return error_response(request, 401, "unauthorized", "sign in first")
    request[USER] = user
    return await handler(request)


def user_of(request: web.Request) -> str | None:
    return request.get(USER)

"""Who may do what: identifying requests, the shared-token login, and cross-site protection.

An `AccessPolicy` decides. `OpenAccess` (no token set, as for a server on 127.0.0.1) lets
everyone do everything; `TokenAccess` requires the shared token, as `Authorization: Bearer` for
scripts or through the login form and a server-side session for browsers. A host app passes its
own policy to use its own users. Independently of the policy, the server answers only to its own
host names (against DNS rebinding), and a state-changing request or a websocket that a browser
sends from another origin is refused.
"""

from __future__ import annotations

import hmac
import logging
from typing import Final, Protocol
from urllib.parse import quote

from aiohttp import hdrs, web

from taskcast.records import TaskRecord
from taskcast.settings import Settings
from taskcast.web import params
from taskcast.web.errors import Handler, error_response
from taskcast.web.hosts import host_answered
from taskcast.web.keys import ALLOWED_HOSTS, POLICY, SETTINGS, USER, local_path
from taskcast.web.sessions import Sessions, SessionStore

logger = logging.getLogger(__name__)

COOKIE = "taskcast_session"
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
    """One shared token: whoever presents it, as a Bearer header or through the login form
    (which opens a server-side session, see `taskcast.web.sessions`), may do everything."""

    USER: Final = "token"

    def __init__(
        self, token: str, login_url: str = "/login", sessions: SessionStore | None = None
    ) -> None:
        self.login_url = login_url
        if len(token) < 8:
            raise ValueError("the auth token must be at least 8 characters long")
        if not token.isascii() or not token.isprintable():
            raise ValueError("the auth token must be printable ASCII (it travels in a header)")
        self._token = token.encode()
        if sessions is None:
            defaults = Settings()
            sessions = Sessions(defaults.session_seconds, defaults.max_sessions)
        self.sessions: SessionStore = sessions

    def token_matches(self, presented: str) -> bool:
        """Constant-time comparison; text that is not printable ASCII never matches."""
        text = params.ascii_value(presented)
        return text is not None and hmac.compare_digest(text.encode(), self._token)

    async def identify(self, request: web.Request) -> str | None:
        scheme, _, presented = (params.header(request, hdrs.AUTHORIZATION) or "").partition(" ")
        if scheme.lower() == "bearer" and presented:
            return self.USER if self.token_matches(presented.strip()) else None
        session_id = params.cookie(request, COOKIE)
        return await self.sessions.user(session_id) if session_id else None


def host_allowed(request: web.Request) -> bool:
    """Does the server answer to this request's `Host` (see `taskcast.web.hosts`)? Logs a
    refusal with the name, so whoever runs the server sees which name to allow."""
    header = request.headers.get(hdrs.HOST)
    if host_answered(header, request.app[ALLOWED_HOSTS]):
        return True
    logger.warning(
        "refused Host %r for %s %s from %s: start the server with --allowed-host NAME "
        "(Settings.allowed_hosts) to answer to it",
        header,
        request.method,
        request.path,
        request.remote,
    )
    return False


def origin_allowed(request: web.Request) -> bool:
    """The one cross-site check, for writes and websockets alike, also where Taskcast's
    middleware does not run (the channel on an embedding host app): the `Host` must be one the
    server answers to, and a browser's Origin the server's own or in `Settings.allowed_origins`."""
    if not host_allowed(request):
        return False
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return True  # not a browser's cross-site request: scripts and tools send no Origin
    own = f"{request.scheme}://{request.host}"
    return origin == own or origin in request.app[SETTINGS].allowed_origins


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer only to our own host names, refuse cross-site writes, identify the user, and
    keep out who is not signed in."""
    if not host_allowed(request):
        return error_response(
            request,
            421,
            "misdirected_request",
            "this server does not answer to that host name; start it with "
            "--allowed-host NAME (Settings.allowed_hosts) to use that name",
        )
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
            target = quote(request.path_qs, safe="/")
            raise web.HTTPSeeOther(f"{policy.login_url}?next={target}")
        return error_response(request, 401, "unauthorized", "sign in first")
    request[USER] = user
    return await handler(request)


def user_of(request: web.Request) -> str | None:
    return request.get(USER)

"""Errors over HTTP: one table from the core's exceptions to a status and a short code, and the
one way each answer is written.

Under /api/ every answer is JSON, errors included: `{"error": <short code>, "detail": <message>}`
plus any fields the error carries. A page gets plain text, `<short code>: <message>`. Handlers
raise `ApiError` for the answers of their own (a bad body, a stream id in use when starting) and
let the core's exceptions in the table through; a bug under /api/ is a logged JSON 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import hdrs, web

from taskcast.cluster.connection import EngineUnavailableError
from taskcast.errors import RunnerClosedError, StreamBusyError, TaskSpecError
from taskcast.schedules.entry import ScheduleBusyError, UnknownScheduleError
from taskcast.schedules.rules import ScheduleError
from taskcast.web.keys import local_path

logger = logging.getLogger(__name__)

#: what the core's exceptions mean over HTTP, the most specific first: (exception, status, code)
CORE_ERRORS: Final[tuple[tuple[type[Exception], int, str], ...]] = (
    (UnknownScheduleError, 404, "not_found"),
    (ScheduleBusyError, 409, "busy"),
    (StreamBusyError, 409, "stream_busy"),
    (ScheduleError, 400, "bad_request"),
    (TaskSpecError, 400, "bad_request"),
    (RunnerClosedError, 503, "shutting_down"),
    (EngineUnavailableError, 503, "engine_unavailable"),
)

#: the short code of each HTTP error aiohttp itself answers under /api/ (no such route, a method
#: the route lacks, a body over the limit, a request that is not a websocket upgrade...). Fixed
#: here rather than made from the reason phrase, which Python renames between versions (3.13
#: calls 413 "Content Too Large"); a status not listed gets a code made from its phrase.
HTTP_ERRORS: Final[dict[int, str]] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_entity_too_large",
}


class ApiError(Exception):
    """An answer a handler chose: its status, short code, message and any extra JSON fields."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.extra = status, error, detail, extra

    @classmethod
    def from_core(cls, exc: Exception) -> ApiError | None:
        """The table's answer to `exc`, or None when the table does not know it."""
        for kind, status, error in CORE_ERRORS:
            if isinstance(exc, kind):
                # a busy stream names its run, as `POST /api/tasks` does
                extra = {"running": exc.task_id} if isinstance(exc, StreamBusyError) else {}
                return cls(status, error, str(exc), **extra)
        return None


def json_error(status: int, error: str, detail: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "detail": detail, **extra}, status=status)


def error_response(
    request: web.Request, status: int, error: str, detail: str, **extra: Any
) -> web.Response:
    """JSON under /api/ or when the client asks for it, plain text for pages."""
    if local_path(request).startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    ):
        return json_error(status, error, detail, **extra)
    return web.Response(status=status, text=f"{error}: {detail}")


def _http_detail(request: web.Request, exc: web.HTTPException) -> str:
    """aiohttp's own text, or a sentence for the router's bare "404: Not Found" and "405: ..."."""
    if exc.text and exc.text != f"{exc.status}: {exc.reason}":
        return exc.text
    if exc.status == 404:
        return f"no API endpoint at {request.path[:200]}"
    if exc.status == 405:
        allowed = exc.headers.get(hdrs.ALLOW, "")
        return f"{request.method} is not allowed here; use {allowed or 'another method'}"
    return exc.reason


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer under /api/ is JSON, errors included; a page gets its error as text. A
    client's mistake is a 4xx either way; only a bug is a 500, logged."""
    api = local_path(request).startswith("/api/")
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(request, exc.status, exc.error, exc.detail, **exc.extra)
    except web.HTTPException as exc:
        if not api or exc.status < 400 or exc.status == 101:
            raise
        error = HTTP_ERRORS.get(exc.status) or exc.reason.lower().replace(" ", "_")
        answer = json_error(exc.status, error, _http_detail(request, exc))
        if hdrs.ALLOW in exc.headers:  # a 405 says which methods the route has (RFC 9110)
            answer.headers[hdrs.ALLOW] = exc.headers[hdrs.ALLOW]
        return answer
    except Exception as exc:
        if isinstance(exc, OSError) and isinstance(
            request.match_info.route.resource, web.StaticResource
        ):
            # aiohttp's static files let a name the file system refuses (too long) out as a
            # 500; no such file is ours to serve
            logger.info("static: refused %s: %s", request.path[:200], exc.strerror)
            raise web.HTTPNotFound() from None
        known = ApiError.from_core(exc)
        if known is not None:
            return error_response(request, known.status, known.error, known.detail, **known.extra)
        if not api:
            raise  # a bug behind a page or a socket: aiohttp logs it and answers 500
        logger.exception("API %s %s failed", request.method, request.path)
        return json_error(500, "internal_error", "the server failed; see its log")

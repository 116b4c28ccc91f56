"""Error pages for browsers: a page's 4xx or 5xx answer, which `errors.api_errors` and aiohttp
give as plain text, becomes a page in the console's shell when the browser asks for HTML.

Scripts and the JSON API keep their answers as they are: only a request whose `Accept` names
`text/html` outside /api/ gets a page, with the same status and the same message.
"""

from __future__ import annotations

import logging
from typing import Final

import aiohttp_jinja2
from aiohttp import web

from taskcast.web.errors import Handler
from taskcast.web.keys import local_path
from taskcast.web.pages import page_context

logger = logging.getLogger(__name__)

#: what each status means to someone who followed a link
TITLES: Final = {
    400: "That request is not right",
    401: "Sign in first",
    403: "Not allowed",
    404: "Nothing here",
    405: "Not allowed this way",
    409: "Busy",
    413: "Too large",
    429: "Too many at once",
    503: "Not available now",
}

#: what to say when the server said nothing of its own
DEFAULT_DETAIL: Final = {
    404: "There is no page at this address. It may have been a task that was purged.",
    405: "This address does not answer that kind of request.",
}


def wants_page(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "") and not local_path(request).startswith(
        "/api/"
    )


def error_page(request: web.Request, status: int, detail: str) -> web.Response:
    """The shell with the status, a title people understand, and the server's message."""
    title = TITLES.get(status) or ("Something went wrong" if status >= 500 else "That did not work")
    context = {**page_context(request), "status": status, "title": title, "detail": detail}
    return aiohttp_jinja2.render_template("error.html", request, context, status=status)


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outside `api_errors`: turns a page's plain-text error into an HTML page for browsers."""
    if not wants_page(request):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # aiohttp's own text ("404: Not Found") says nothing the title does not
        said = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else ""
        return error_page(request, exc.status, said or DEFAULT_DETAIL.get(exc.status, exc.reason))
    if (
        response.status >= 400
        and isinstance(response, web.Response)
        and response.content_type == "text/plain"
    ):
        return error_page(request, response.status, response.text or response.reason)
    return response

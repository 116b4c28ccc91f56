"""The demo pages: the seed's example 2, a second tab, raw frames, the mini-language tour."""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
from typing import Final

from aiohttp import web

from taskcast.errors import StreamBusyError, TaskSpecError
from taskcast.spec import build_spec
from taskcast.web import params
from taskcast.web.errors import ApiError
from taskcast.web.keys import BASE, POLICY, RUNNER
from taskcast.web.pages import page
from taskcast.web.security import user_of

logger = logging.getLogger(__name__)

STREAM_ID = re.compile(r"^[\w.:-]{1,100}$")


def stream_from_query(request: web.Request) -> str:
    stream_id = request.query.get("stream", "")
    if not STREAM_ID.match(stream_id):
        raise web.HTTPBadRequest(
            text="stream must be 1 to 100 letters, digits, '_', '.', ':' or '-'"
        )
    return stream_id


def fresh_run(request: web.Request, group: str, task: str) -> dict[str, object]:
    """A page context for a new run of a demo task, which the page's form starts by POST."""
    publish_id = secrets.token_hex(4)
    return {
        "stream_id": f"{group}__{publish_id}",
        "start_action": f"{request.app[BASE]}/demo/start",
        "task": task,
        "publish_id": publish_id,
    }


@page("demo.html")
async def demo(request: web.Request) -> dict[str, object]:
    """The seed's example 2: the element itself starts `tasks.test_task` through `task_href`."""
    return fresh_run(request, "demo", "seed")


@page("watch.html")
async def demo_watch(request: web.Request) -> dict[str, object]:
    """Watch any stream (a second tab, a stream started elsewhere): replay, then live."""
    return {"stream_id": stream_from_query(request)}


@page("frames.html")
async def demo_frames(request: web.Request) -> dict[str, object]:
    """The raw frames of a stream, for developers debugging their own tasks."""
    return {"stream_id": stream_from_query(request)}


@page("tour.html")
async def demo_tour(request: web.Request) -> dict[str, object]:
    """A tour of the event mini-language, one operator after another."""
    return fresh_run(request, "tour", "tour")


DEMO_TASKS = {"seed": ("tasks.test_task", {"param": 123}), "tour": ("tasks.mini_language_tour", {})}
#: demo runs that may be unfinished at once, all users together; one more is refused with 429
MAX_DEMO_RUNS: Final = 4
PUBLISH_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


#: the publish groups of the demo tasks, to count their unfinished runs
DEMO_GROUPS: Final = frozenset({"demo", "tour"})


def _running_demos(request: web.Request) -> int:
    return sum(1 for r in request.app[RUNNER].active_records() if r.group in DEMO_GROUPS)


async def demo_start(request: web.Request) -> web.StreamResponse:
    """Start a demo task from the demo page's form (a POST: it changes state), then show its
    stream; a script that asks for JSON gets the task's id instead."""
    form = await params.read_form(request)
    publish_id = params.form_text(form, "task_publish_id")
    if not PUBLISH_ID.match(publish_id):
        raise ApiError(400, "bad_request", "task_publish_id must be 1 to 32 letters or digits")
    which = params.form_text(form, "task") or "seed"
    if which not in DEMO_TASKS:
        raise ApiError(400, "bad_request", f"task must be one of {', '.join(DEMO_TASKS)}")
    func, kwargs = DEMO_TASKS[which]
    user = user_of(request)
    if not request.app[POLICY].can_start(user, func):
        raise ApiError(403, "forbidden", f"you may not start {func}")
    if _running_demos(request) >= MAX_DEMO_RUNS:
        logger.warning("demo: %d demo runs unfinished, the limit; refused one more", MAX_DEMO_RUNS)
        raise ApiError(429, "too_many_demos", f"{MAX_DEMO_RUNS} demos are running; try later")
    try:
        spec = build_spec(func, (), {"task_publish_id": publish_id, **kwargs})
        task_id = request.app[RUNNER].submit(dataclasses.replace(spec, started_by=user))
    except TaskSpecError as exc:
        # The demo tasks live in the `tasks` module, which `run.py` loads by default.
        raise ApiError(503, "demo_unavailable", f"demo tasks not available: {exc}") from None
    except StreamBusyError as exc:
        raise ApiError(409, "busy", str(exc), id=exc.task_id) from None
    if "application/json" in request.headers.get("Accept", ""):
        return web.json_response({"id": task_id, "stream_id": spec.stream_id}, status=201)
    watch = request.app.router["demo_watch"].url_for().with_query(stream=spec.stream_id or "")
    raise web.HTTPSeeOther(str(watch))

"""The demo pages: the seed's example 2, a second tab, raw frames, the mini-language tour."""

from __future__ import annotations

import re
import secrets

from aiohttp import web
from taskcast.errors import StreamBusyError, TaskSpecError
from taskcast.spec import build_spec
from taskcast.web.errors import json_error
from taskcast.web.keys import BASE, RUNNER
from taskcast.web.pages import page

STREAM_ID = re.compile(r"^[\w.:-]{1,100}$")


def stream_from_query(request: web.Request) -> str:
    stream_id = request.query.get("stream", "")
    if not STREAM_ID.match(stream_id):
        raise web.HTTPBadRequest(
            text="stream must be 1 to 100 letters, digits, '_', '.', ':' or '-'"
        )
    return stream_id


def fresh_run(request: web.Request, group: str, task: str) -> dict[str, object]:
    """A page context for a new run of a demo task, which the element starts via task_href."""
    publish_id = secrets.token_hex(4)
    return {
        "stream_id": f"{group}__{publish_id}",
        "start_href": f"{request.app[BASE]}/demo/start?task={task}&task_publish_id={publish_id}",
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


async def demo_start(request: web.Request) -> web.Response:
    """Start a demo task (the element GETs this once its socket is open)."""
    publish_id = request.query.get("task_publish_id", "")
    if not publish_id.isalnum() or len(publish_id) > 32:
        raise web.HTTPBadRequest(text="task_publish_id must be 1 to 32 letters or digits")
    which = request.query.get("task", "seed")
    if which not in DEMO_TASKS:
        raise web.HTTPBadRequest(text=f"task must be one of {', '.join(DEMO_TASKS)}")
    func, kwargs = DEMO_TASKS[which]
    try:
        spec = build_spec(func, (), {"task_publish_id": publish_id, **kwargs})
        task_id = request.app[RUNNER].submit(spec)
    except TaskSpecError as exc:
        # The demo tasks live in the `tasks` module, which `run.py` loads by default.
        return json_error(503, "demo tasks not available", str(exc))
    except StreamBusyError as exc:
        return json_error(409, "busy", str(exc), id=exc.task_id)
    return web.json_response({"id": task_id, "stream_id": spec.stream_id})

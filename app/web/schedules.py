"""Schedules over HTTP: the JSON API, and the list page and its forms.

API errors are JSON `{"error": <short code>, "detail": <message>}`: 400 a request that makes no
sense, 404 an unknown schedule, 409 a run still going (or a stream in use), 503 shutting down
(the scheduler's exceptions, answered by the table in `taskcast.web.errors`). The page's forms
work without JavaScript: each POST redirects back to the list, and Delete asks first on a page
of its own (the list's script asks in a dialog instead).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from taskcast.errors import RunnerClosedError, StreamBusyError, TaskSpecError
from taskcast.schedules.entry import ScheduleBusyError, ScheduleEntry, UnknownScheduleError
from taskcast.schedules.pytigon import FROM_CODE
from taskcast.schedules.rules import ScheduleError
from taskcast.schedules.scheduler import Scheduler
from taskcast.schedules.words import raw, summary
from taskcast.web.errors import ApiError
from taskcast.web.keys import POLICY, SCHEDULER, SETTINGS
from taskcast.web.pages import page
from taskcast.web.security import user_of

ACTIONS = ("pause", "resume", "run", "delete")
#: what a task id looks like (a "run now" notice links only to one)
TASK_ID = re.compile(r"[0-9a-f]{32}")


def _when(scheduler: Scheduler, moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(scheduler.tz).isoformat()


def entry_json(scheduler: Scheduler, entry: ScheduleEntry) -> dict[str, Any]:
    """A schedule as the API and the page show it."""
    record = scheduler.runner.get(entry.last_task) if entry.last_task else None
    status = "skipped" if entry.last_skip else record.status.value if record else None
    return {
        "name": entry.name,
        "func": entry.func,
        "rule": summary(entry.rule, scheduler.tz),
        "paused": entry.paused,
        "finished": entry.next_run is None,
        "repeats": entry.repeats,
        "catch_up": entry.catch_up,
        "overlap": entry.overlap,
        "backlog": entry.backlog,
        "origin": entry.origin,
        "next_run": _when(scheduler, entry.next_run),
        "last_run": _when(scheduler, entry.last_run),
        "last_task": entry.last_task,
        "last_status": status,
        "last_skip": entry.last_skip,
        "running_task": scheduler.running_task(entry.name),
    }


# -- JSON API ------------------------------------------------------------------------------------


def _act(scheduler: Scheduler, name: str, action: str) -> str | None:
    """Do a page or API action; the id of the run it started, if any."""
    if action == "pause":
        scheduler.pause(name)
    elif action == "resume":
        scheduler.resume(name)
    elif action == "run":
        return scheduler.run_now(name)
    elif action == "delete":
        scheduler.delete(name)
    else:
        raise ScheduleError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    return None


async def api_list(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    entries = sorted(scheduler.entries.values(), key=lambda e: e.name)
    return web.json_response(
        {
            "schedules": [entry_json(scheduler, entry) for entry in entries],
            "timezone": str(scheduler.tz),
            "running": request.app[SETTINGS].scheduler,
        }
    )


async def api_detail(request: web.Request) -> web.Response:
    scheduler = request.app[SCHEDULER]
    name = request.match_info["name"]
    body = entry_json(scheduler, scheduler.get(name))
    skips = await scheduler.skips(name)
    body["skips"] = [{"due": _when(scheduler, s.due), "reason": s.reason} for s in skips]
    return web.json_response(body)


def may_manage(request: web.Request) -> bool:
    return request.app[POLICY].can_manage_schedules(user_of(request))


def check_may_manage(request: web.Request) -> None:
    if not may_manage(request):
        raise ApiError(403, "forbidden", "you may not change schedules")


async def api_action(request: web.Request) -> web.Response:
    check_may_manage(request)
    scheduler = request.app[SCHEDULER]
    name, action = request.match_info["name"], request.match_info["action"]
    if action == "delete":
        raise ScheduleError("delete a schedule with DELETE /api/schedules/{name}")
    task_id = _act(scheduler, name, action)
    body = entry_json(scheduler, scheduler.get(name))
    if task_id is None:
        return web.json_response(body)
    return web.json_response({"id": task_id, "schedule": body}, status=202)


async def api_delete(request: web.Request) -> web.Response:
    check_may_manage(request)
    name = request.match_info["name"]
    request.app[SCHEDULER].delete(name)
    return web.json_response({"deleted": name})


# -- pages ---------------------------------------------------------------------------------------


def _wall(scheduler: Scheduler, moment: datetime | None) -> str:
    """A run's time on the schedules' clock, as the rules read: "2026-12-07 06:00"."""
    return "" if moment is None else f"{moment.astimezone(scheduler.tz):%Y-%m-%d %H:%M}"


def returns_from_code(entry: ScheduleEntry) -> str | None:
    """For a schedule a task module's init_schedule defines, what a deletion means: it comes
    back at the server's next start. None for one made at run time, which stays deleted."""
    if not entry.origin.startswith(FROM_CODE):
        return None
    module = entry.origin.removeprefix(FROM_CODE)
    return f"defined in code ({module}.init_schedule): it returns at the next start"


def _page_row(request: web.Request, scheduler: Scheduler, entry: ScheduleEntry) -> dict[str, Any]:
    here = str(request.app.router["schedules"].url_for())
    return {
        **entry_json(scheduler, entry),
        "path": f"{here}/{quote(entry.name, safe='')}",
        "rule_raw": raw(entry.rule),
        "next_wall": _wall(scheduler, entry.next_run),
        "last_wall": _wall(scheduler, entry.last_run),
        "returns": returns_from_code(entry),
    }


def zone_words(scheduler: Scheduler) -> str:
    """The schedules' zone as the page names it: "Europe/Warsaw (UTC+01:00 now)"."""
    offset = datetime.now(scheduler.tz).strftime("%z")
    now = f"UTC{offset[:3]}:{offset[3:]}" if offset not in ("", "+0000") else "UTC"
    zone = str(scheduler.tz)
    return zone if zone == now or zone == "UTC" else f"{zone} ({now} now)"


@page("schedules.html")
async def schedules_page(request: web.Request) -> dict[str, Any]:
    scheduler = request.app[SCHEDULER]
    entries = sorted(scheduler.entries.values(), key=lambda e: e.name)
    started = request.query.get("started", "")
    return {
        "schedules": [_page_row(request, scheduler, entry) for entry in entries],
        "timezone": str(scheduler.tz),
        "zone_words": zone_words(scheduler),
        "running": request.app[SETTINGS].scheduler,
        "notice": request.query.get("notice", "")[:500],
        "started": started if TASK_ID.fullmatch(started) else "",
        "started_from": request.query.get("schedule", "")[:200],
        "may_manage": may_manage(request),
    }


@page("schedule_delete.html")
async def confirm_delete(request: web.Request) -> dict[str, Any]:
    """Delete's question, for a browser without JavaScript: a page with the form that deletes."""
    if not may_manage(request):
        raise web.HTTPForbidden(text="you may not change schedules")
    scheduler = request.app[SCHEDULER]
    try:
        entry = scheduler.get(request.match_info["name"])
    except UnknownScheduleError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return {"s": _page_row(request, scheduler, entry), "timezone": str(scheduler.tz)}


def _done(name: str, action: str, returns: str | None) -> str:
    if action == "delete":
        return f"{name} deleted" + (f"; it is {returns}" if returns else "")
    return f"{name} {'paused' if action == 'pause' else 'resumed'}"


async def page_action(request: web.Request) -> web.Response:
    """A form's POST: do it, then go back to the list (with a notice when it could not be done)."""
    if not may_manage(request):
        raise web.HTTPForbidden(text="you may not change schedules")
    scheduler = request.app[SCHEDULER]
    name, action = request.match_info["name"], request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound(text=f"no action {action!r}")
    query: dict[str, str] = {}
    try:
        returns = returns_from_code(scheduler.get(name))
        task_id = _act(scheduler, name, action)
    except UnknownScheduleError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except (ScheduleBusyError, StreamBusyError, TaskSpecError, RunnerClosedError) as exc:
        query["notice"] = str(exc)
    else:
        if task_id:
            query.update(started=task_id, schedule=name)
        else:
            query["notice"] = _done(name, action, returns)
    back = request.app.router["schedules"].url_for().with_query(query)
    raise web.HTTPSeeOther(str(back))

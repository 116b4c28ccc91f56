"""Schedules over HTTP: the JSON API, and the list page and its forms.

API errors are JSON `{"error": <short code>, "detail": <message>}`: 400 a request that makes no
sense, 404 an unknown schedule, 409 a run still going (or a stream in use), 503 shutting down
(the scheduler's exceptions, answered by the table in `taskcast.web.errors`). The page's forms
work without JavaScript: each POST redirects back to the list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from taskcast.errors import RunnerClosedError, StreamBusyError, TaskSpecError
from taskcast.schedules.calendar import DayTimes, Interval, MonthDay, Step
from taskcast.schedules.entry import ScheduleBusyError, ScheduleEntry, UnknownScheduleError
from taskcast.schedules.rules import AnyOf, Cron, Every, Once, Rule, ScheduleError
from taskcast.schedules.scheduler import Scheduler
from taskcast.web.errors import ApiError
from taskcast.web.keys import POLICY, SCHEDULER, SETTINGS
from taskcast.web.pages import page
from taskcast.web.security import user_of

ACTIONS = ("pause", "resume", "run", "delete")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _clock(seconds: int) -> str:
    text = f"{seconds // 3600:02}:{seconds // 60 % 60:02}"
    return text + (f":{seconds % 60:02}" if seconds % 60 else "")


def _listed(values: Any, names: tuple[str, ...] | None = None) -> str:
    return ", ".join(names[v] if names else str(v) for v in sorted(values))


def describe(rule: Rule) -> str:
    """A rule in a few words, for people."""
    if isinstance(rule, AnyOf):
        return "; ".join(describe(part) for part in rule.rules)
    days = getattr(rule, "weekdays", None)
    on_days = f" on {_listed(days, _DAYS)}" if days else ""
    if isinstance(rule, DayTimes):
        shown = ", ".join(_clock(t) for t in rule.times[:8]) + ("…" if len(rule.times) > 8 else "")
        return f"{'hourly' if rule.clock else 'daily'} at {shown}{on_days}"
    if isinstance(rule, Interval):
        period = f"{rule.period // 60} min" if rule.period % 60 == 0 else f"{rule.period} s"
        second = f" at second {rule.offset}" if rule.offset else ""
        hours = f" in hours {_listed(rule.hours)}" if rule.hours else ""
        return f"every {period}{second} from midnight{hours}{on_days}"
    if isinstance(rule, MonthDay):
        months = f" in months {_listed(rule.months)}" if rule.months else ""
        times = ", ".join(_clock(t) for t in rule.times)
        return f"monthly on day {rule.day} at {times}{months}{on_days}"
    if isinstance(rule, Step):
        unit = f"{rule.days} day(s)" if rule.days else f"{rule.months} month(s)"
        return f"every {unit} from {rule.anchor:%Y-%m-%d %H:%M:%S}"
    if isinstance(rule, Every):
        return f"every {rule.seconds // 60} minute(s) from {rule.anchor:%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(rule, Once):
        return f"once at {rule.anchor:%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(rule, Cron):
        return f"cron {rule.expression}"
    return rule.kind


def _when(scheduler: Scheduler, moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(scheduler.tz).isoformat()


def entry_json(scheduler: Scheduler, entry: ScheduleEntry) -> dict[str, Any]:
    """A schedule as the API and the page show it."""
    record = scheduler.runner.get(entry.last_task) if entry.last_task else None
    status = "skipped" if entry.last_skip else record.status.value if record else None
    return {
        "name": entry.name,
        "func": entry.func,
        "rule": describe(entry.rule),
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


@page("schedules.html")
async def schedules_page(request: web.Request) -> dict[str, Any]:
    scheduler = request.app[SCHEDULER]
    here = str(request.app.router["schedules"].url_for())
    rows = [
        entry_json(scheduler, e) for e in sorted(scheduler.entries.values(), key=lambda e: e.name)
    ]
    for row in rows:
        row["path"] = f"{here}/{quote(row['name'], safe='')}"
    return {
        "schedules": rows,
        "timezone": str(scheduler.tz),
        "running": request.app[SETTINGS].scheduler,
        "notice": request.query.get("notice", ""),
    }


async def page_action(request: web.Request) -> web.Response:
    """A form's POST: do it, then go back to the list (with a notice when it could not be done)."""
    if not may_manage(request):
        raise web.HTTPForbidden(text="you may not change schedules")
    scheduler = request.app[SCHEDULER]
    name, action = request.match_info["name"], request.match_info["action"]
    if action not in ACTIONS:
        raise web.HTTPNotFound(text=f"no action {action!r}")
    try:
        task_id = _act(scheduler, name, action)
    except UnknownScheduleError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except (ScheduleBusyError, StreamBusyError, TaskSpecError, RunnerClosedError) as exc:
        notice = str(exc)
    else:
        notice = f"started task {task_id}" if task_id else f"{name}: {action} done"
    back = request.app.router["schedules"].url_for().with_query(notice=notice)
    raise web.HTTPSeeOther(str(back))

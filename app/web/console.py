"""The task console's start forms, for people (the list is `task_list`'s, a task's page
`task_page`'s).

Every page works without JavaScript (plain links and forms); `static/console.js` adds live
updates over the feed. Nothing a user typed reaches a page unescaped (autoescape is on).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from taskcast.registry import Parameter, RegisteredTask
from taskcast.web import params
from taskcast.web.errors import ApiError
from taskcast.web.keys import BASE, POLICY, REGISTRY
from taskcast.web.pages import page, page_context
from taskcast.web.security import user_of
from taskcast.web.services import start_registered, startable


@page("registry.html")
async def registry_page(request: web.Request) -> dict[str, Any]:
    return {"tasks": startable(request)}


def _registered(request: web.Request) -> RegisteredTask:
    name = request.match_info["name"]
    task = request.app[REGISTRY].get(name)
    if task is None or not request.app[POLICY].can_start(user_of(request), name):
        raise web.HTTPNotFound(text=f"no registered task {name!r}")
    return task


def _form_context(
    task: RegisteredTask, values: dict[str, str], message: str = ""
) -> dict[str, Any]:
    return {"task": task, "values": values, "message": message}


async def start_form(request: web.Request) -> web.Response:
    task = _registered(request)
    return aiohttp_jinja2.render_template(
        "start.html", request, {**page_context(request), **_form_context(task, {})}
    )


def _convert(parameter: Parameter, text: str) -> Any:
    """A form field's text as the parameter's type (from its annotation or its default)."""
    kind = parameter.type or (type(parameter.default) if parameter.default is not None else str)
    if kind is bool:
        return text.lower() in ("1", "true", "on", "yes")
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ApiError(
                400, "bad_arguments", f"argument {parameter.name!r} must be {kind.__name__}"
            ) from None
    return text


def arguments_from_form(task: RegisteredTask, form: dict[str, str]) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    for parameter in task.parameters:
        text = form.get(parameter.name, "")
        if parameter.type is bool or isinstance(parameter.default, bool):
            arguments[parameter.name] = parameter.name in form
        elif text != "" or parameter.required:
            arguments[parameter.name] = _convert(parameter, text)
    extra = form.get("__more__", "").strip()
    if extra:
        try:
            more = json.loads(extra)
        except ValueError:
            raise ApiError(400, "bad_arguments", "other arguments must be a JSON object") from None
        if not isinstance(more, dict):
            raise ApiError(400, "bad_arguments", "other arguments must be a JSON object")
        arguments.update(more)
    return arguments


async def start(request: web.Request) -> web.Response:
    """The start form: bind the fields to the signature, start, and go to the task's page."""
    task = _registered(request)
    posted = await params.read_form(request)
    form = {key: value for key, value in posted.items() if isinstance(value, str)}
    try:
        arguments = arguments_from_form(task, form)
        record = start_registered(
            request, task.name, arguments, form.get("task_publish_id") or None
        )
    except ApiError as exc:
        context = {**page_context(request), **_form_context(task, form, exc.detail)}
        return aiohttp_jinja2.render_template("start.html", request, context, status=exc.status)
    raise web.HTTPSeeOther(f"{request.app[BASE]}/tasks/{record.id}")

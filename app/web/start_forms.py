"""The start forms: the list of startable tasks, one task's form built from its signature and
docstring, and the POST that starts it.

Forms work without JavaScript. The browser refuses an empty required field (`required`); the
server checks again and answers a form that names each field to mend, with what was typed kept.
"""

from __future__ import annotations

import json
import logging
import re
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

logger = logging.getLogger(__name__)

#: the form field of the other keyword arguments (a task taking **kwargs), as a JSON object
MORE_FIELD = "__more__"
#: what a form shows for each simple type: the words, and the input type
KINDS: dict[str, tuple[str, str]] = {
    "int": ("whole number", "number"),
    "float": ("number", "number"),
    "bool": ("yes or no", "checkbox"),
    "str": ("text", "text"),
}


class FormErrors(Exception):
    """Fields of a start form that cannot be used, each with the sentence that says why."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(fields.values()))
        self.fields = fields


#: `int | None`, `None | int`, `Optional[int]`: an optional value of one simple type
_OPTIONAL = re.compile(r"^(?:(\w+) \| None|None \| (\w+)|(?:typing\.)?Optional\[(\w+)\])$")


def kind_of(parameter: Parameter) -> str:
    """The parameter's type name (from its annotation, else its default), "" if none; an
    optional simple type (`int | None`) is its simple type: an empty field gives the default."""
    if parameter.annotation:
        optional = _OPTIONAL.match(parameter.annotation)
        return next(filter(None, optional.groups())) if optional else parameter.annotation
    if not parameter.required and parameter.default is not None:
        return type(parameter.default).__name__
    return ""


def kind_words(kind: str) -> str:
    """The type as a form shows it: "whole number" for int, the annotation itself otherwise."""
    return KINDS[kind][0] if kind in KINDS else kind


def input_type(kind: str) -> str:
    return KINDS[kind][1] if kind in KINDS else "text"


@page("registry.html")
async def registry_page(request: web.Request) -> dict[str, Any]:
    return {"tasks": startable(request), "kind_of": kind_of, "kind_words": kind_words}


def _registered(request: web.Request) -> RegisteredTask:
    name = request.match_info["name"]
    task = request.app[REGISTRY].get(name)
    if task is None or not request.app[POLICY].can_start(user_of(request), name):
        raise web.HTTPNotFound(text=f"no registered task {name!r}")
    return task


def _render(
    request: web.Request,
    task: RegisteredTask,
    values: dict[str, str],
    *,
    message: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    context = {
        **page_context(request),
        "task": task,
        "values": values,
        "message": message,
        "errors": errors or {},
        "kind_of": kind_of,
        "kind_words": kind_words,
        "input_type": input_type,
        "more_field": MORE_FIELD,
    }
    return aiohttp_jinja2.render_template("start.html", request, context, status=status)


async def start_form(request: web.Request) -> web.Response:
    return _render(request, _registered(request), {})


def _convert(parameter: Parameter, text: str) -> Any:
    """A form field's text as the parameter's type; ValueError names what was expected."""
    kind = kind_of(parameter)
    if kind == "int":
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"{parameter.name} must be a whole number, like 42") from None
    if kind == "float":
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError(f"{parameter.name} must be a number, like 2.5") from None
    return text


def arguments_from_form(task: RegisteredTask, form: dict[str, str]) -> dict[str, Any]:
    """The task's keyword arguments from its form's fields; FormErrors names every bad field.

    An empty optional field keeps the function's default; a checkbox is a bool whatever its
    default; other arguments come from one JSON object when the task takes **kwargs.
    """
    arguments: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for parameter in task.parameters:
        text = form.get(parameter.name, "")
        if kind_of(parameter) == "bool":
            arguments[parameter.name] = parameter.name in form
        elif text.strip() == "" and parameter.required:
            errors[parameter.name] = f"{parameter.name} is required: fill it in"
        elif text != "":
            try:
                arguments[parameter.name] = _convert(parameter, text)
            except ValueError as exc:
                errors[parameter.name] = str(exc)
    extra = form.get(MORE_FIELD, "").strip()
    if extra:
        try:
            more = json.loads(extra)
        except ValueError:
            more = None
        if not isinstance(more, dict):
            errors[MORE_FIELD] = 'other arguments must be a JSON object, like {"name": 1}'
        else:
            arguments.update(more)
    if errors:
        raise FormErrors(errors)
    return arguments


async def start(request: web.Request) -> web.Response:
    """The start form's POST: bind the fields to the signature, start, go to the task's page."""
    task = _registered(request)
    posted = await params.read_form(request)
    form = {key: value for key, value in posted.items() if isinstance(value, str)}
    try:
        arguments = arguments_from_form(task, form)
        record = start_registered(
            request, task.name, arguments, form.get("task_publish_id") or None
        )
    except FormErrors as exc:
        count = len(exc.fields)
        message = f"{count} field{'s' if count > 1 else ''} to mend before {task.name} can start"
        return _render(request, task, form, message=message, errors=exc.fields, status=400)
    except ApiError as exc:
        logger.info("start form of %s refused: %s", task.name, exc.detail)
        return _render(request, task, form, message=exc.detail, status=exc.status)
    raise web.HTTPSeeOther(f"{request.app[BASE]}/tasks/{record.id}")

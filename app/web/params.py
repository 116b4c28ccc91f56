"""The one strict parser for what a client sends: every number in a query or a form, every
header and cookie value, and every form body pass through here.

Numbers are ASCII digits only (`str.isdigit` also takes superscripts, Arabic-Indic and
full-width digits, and `int` takes the last two), at most as long as their upper bound, within a
stated range; anything else is a 400 that says what was expected. Header and cookie values are
printable ASCII or count as absent, so a stray byte never reaches `encode` or `compare_digest`.
No client input reaches a 500.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web
from multidict import MultiDictProxy

from taskcast.web.errors import ApiError

#: the most characters a filter value (group, function, started_by) may have
MAX_FILTER_CHARS: Final = 200


class BadParameter(ApiError):
    """A 400 naming the parameter and what it must be."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, "bad_request", detail)


def whole_number(text: str, name: str, low: int, high: int) -> int:
    """`text` as an int from `low` to `high`: ASCII digits only, no sign, no spaces."""
    if (
        not text.isascii()
        or not text.isdigit()
        or len(text) > len(str(high))
        or not low <= int(text) <= high
    ):
        raise BadParameter(f"{name} must be a whole number from {low} to {high}")
    return int(text)


def query_number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """The query parameter `name` as a whole number (see `whole_number`), or `default`."""
    text = request.query.get(name)
    return default if text is None else whole_number(text, name, low, high)


def query_text(request: web.Request, name: str, limit: int = MAX_FILTER_CHARS) -> str | None:
    """A free-text query parameter (a filter), or None when absent or empty."""
    text = request.query.get(name, "")
    if len(text) > limit:
        raise BadParameter(f"{name} must be at most {limit} characters")
    return text or None


def ascii_value(value: str | None) -> str | None:
    """A header or cookie value as printable ASCII, or None: aiohttp decodes header bytes with
    surrogateescape, so a value may hold lone surrogates that no codec will encode."""
    if value is None or not value.isascii() or not value.isprintable():
        return None
    return value


def header(request: web.Request, name: str) -> str | None:
    return ascii_value(request.headers.get(name))


def cookie(request: web.Request, name: str) -> str | None:
    return ascii_value(request.cookies.get(name))


async def read_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The request's form fields; a body that is not UTF-8 or not a well-formed form is a 400
    (a body over the size limit stays aiohttp's 413)."""
    try:
        return await request.post()
    except (ValueError, UnicodeError) as exc:  # UnicodeDecodeError is both
        raise BadParameter(f"the form could not be read: {type(exc).__name__}") from None


def form_text(form: MultiDictProxy[str | bytes | bytearray | web.FileField], name: str) -> str:
    """A form field as text ("" when absent or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""

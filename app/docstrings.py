"""What a task's docstring tells the people who start it: a summary line, the rest of the text,
and a help text per parameter.

Parameters are read from the three styles Python code commonly uses: Google (`Args:` with
`name (type): text`), numpy (`Parameters` underlined with dashes, `name : type` then indented
text) and Sphinx (`:param name: text`). A docstring in none of them gives a summary and a
description only; nothing here ever fails on odd text.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

#: Google-style section headers that hold parameters
_GOOGLE_PARAMS = frozenset({"args", "arguments", "parameters", "params", "keyword args"})
#: any other Google or numpy section header: it ends a parameter section
_SECTION = re.compile(
    r"^(args|arguments|parameters|params|keyword args|keyword arguments|other parameters|"
    r"returns?|yields?|raises?|examples?|notes?|see also|attributes|references|warnings?|todo)"
    r"\s*:?\s*$",
    re.IGNORECASE,
)
_GOOGLE_ITEM = re.compile(r"^\*{0,2}(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_NUMPY_ITEM = re.compile(r"^\*{0,2}(\w+)(?:\s*,\s*\*{0,2}\w+)*\s*(?::\s*(.*))?$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[\w\[\], .]+\s+)?\*{0,2}(\w+)\s*:\s*(.*)$")
_SPHINX_FIELD = re.compile(r"^:\w+")


@dataclasses.dataclass(frozen=True, slots=True)
class Docstring:
    """A docstring read for a form: its first paragraph, the prose after it, and the help of
    each documented parameter (one line of text, whitespace collapsed)."""

    summary: str = ""
    description: str = ""
    params: dict[str, str] = dataclasses.field(default_factory=dict)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def _google(lines: list[str], start: int, params: dict[str, str]) -> int:
    """Read the items of an `Args:` section from `start`; the index after the section."""
    base: int | None = None
    name: str | None = None
    text: list[str] = []
    index = start
    while index < len(lines):
        line = lines[index]
        if line.strip() and (_indent(line) == 0 or _SECTION.match(line.strip())):
            break
        if line.strip():
            indent = _indent(line)
            base = indent if base is None else base
            item = _GOOGLE_ITEM.match(line.strip()) if indent <= base else None
            if item is not None:
                if name is not None:
                    params[name] = _join(text)
                name, text = item.group(1), [item.group(3)]
            elif name is not None:
                text.append(line.strip())
        index += 1
    if name is not None:
        params[name] = _join(text)
    return index


def _numpy(lines: list[str], start: int, params: dict[str, str]) -> int:
    """Read the items of a numpy `Parameters` section (after its dashes); the index after it."""
    names: list[str] = []
    text: list[str] = []
    index = start

    def keep() -> None:
        for each in names:
            params[each] = _join(text)

    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        underlined = index + 1 < len(lines) and set(lines[index + 1].strip()) == {"-"}
        if stripped and _indent(line) == 0 and underlined:
            break  # the next section
        if stripped and _indent(line) == 0:
            item = _NUMPY_ITEM.match(stripped)
            if item is None:
                break
            keep()
            names = [part.strip().lstrip("*") for part in stripped.split(":")[0].split(",")]
            text = []
        elif stripped and names:
            text.append(stripped)
        index += 1
    keep()
    return index


def _sphinx(lines: list[str], params: dict[str, str]) -> None:
    name: str | None = None
    text: list[str] = []
    for line in lines:
        stripped = line.strip()
        item = _SPHINX_PARAM.match(stripped)
        if item is not None or _SPHINX_FIELD.match(stripped) or not stripped:
            if name is not None:
                params[name] = _join(text)
            name, text = (item.group(1), [item.group(2)]) if item else (None, [])
        elif name is not None:
            text.append(stripped)
    if name is not None:
        params[name] = _join(text)


def parse(doc: str | None) -> Docstring:
    """Read a docstring (as written, or as `inspect.getdoc` gives it)."""
    lines = inspect.cleandoc(doc or "").splitlines()
    if not lines:
        return Docstring()
    params: dict[str, str] = {}
    prose: list[str] = []
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if stripped.rstrip(":").lower() in _GOOGLE_PARAMS and stripped.endswith(":"):
            index = _google(lines, index + 1, params)
        elif stripped.lower() in ("parameters", "other parameters") and set(following) == {"-"}:
            index = _numpy(lines, index + 2, params)
        elif _SECTION.match(stripped) or _SPHINX_FIELD.match(stripped):
            break  # Returns, Raises, :returns: ...: not shown on a form
        else:
            prose.append(lines[index])
            index += 1
    _sphinx(lines, params)
    paragraphs = "\n".join(prose).strip().split("\n\n")
    summary = _join(paragraphs[0].splitlines())
    description = "\n\n".join(_join(p.splitlines()) for p in paragraphs[1:] if p.strip())
    return Docstring(summary, description, params)

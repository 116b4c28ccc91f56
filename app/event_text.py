"""A run's events as lines of plain text: the output log a page shows without JavaScript, and
the text of the output download.

An event is HTML in the element's mini-language (`html===op target`, contract section D). Its
text is what a reader sees of the HTML part, tags left out and entities decoded. Progress
reports (`div.ptig-progress`, from `cproxy.progress`) replace each other on the page, so they
are not log lines: the last one is kept apart.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from html.parser import HTMLParser

__all__ = ["Output", "event_html", "output_of", "text_of"]

#: the operators in the order the element tries them (contract D26)
_MARKERS = ("===>>", "===<<", "===>", "===(", "===)")
_BLOCKS = frozenset(
    {"p", "div", "li", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "ul", "ol", "table"}
)

#: where a line ends in the collected text (new lines are only white space there)
_BREAK = "\x00"


def event_html(data: str) -> str:
    """The HTML part of an event string (all of it when it has no marker)."""
    for marker in _MARKERS:
        if marker in data:
            return data.split(marker)[0]
    return data


class _Text(HTMLParser):
    """Collects the text of HTML, a line break at each block and each new line of a `<pre>`
    (elsewhere a new line is white space, as in a browser); scripts and styles are skipped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag in _BLOCKS:
            self.parts.append(_BREAK)
            self._pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append(_BREAK)
            self._pre = max(0, self._pre - (tag == "pre"))

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data.replace("\n", _BREAK) if self._pre else data)


def text_of(html: str) -> list[str]:
    """The non-blank lines of text in `html`."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    lines = "".join(parser.parts).split(_BREAK)
    return [" ".join(line.split()) for line in lines if line.strip()]


@dataclasses.dataclass(frozen=True, slots=True)
class Output:
    """A run's events as text."""

    lines: list[str]
    #: the text of the last progress report ("100% · rows"), "" without one
    progress: str


def output_of(events: Iterable[tuple[int, str]]) -> Output:
    """The log lines of (seq, data_json) events, in order."""
    lines: list[str] = []
    progress = ""
    for _, data_json in events:
        try:
            data = json.loads(data_json)
        except ValueError:
            continue
        if not isinstance(data, str):
            lines.append(json.dumps(data, ensure_ascii=False))
            continue
        html = event_html(data)
        if "ptig-progress" in data:
            progress = " ".join(text_of(html))
            continue
        lines.extend(text_of(html))
    return Output(lines, progress)

"""One look per state: every status has a label, icon and tone, and pages carry the table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jinja2
import pytest

from taskcast.records import TaskStatus
from taskcast.web import look
from taskcast.web.pages import JINJA_FILTERS
from tests.conftest import ClientFactory
from tests.support.pages import Client, text_of

TEMPLATES = str(Path(__file__).resolve().parents[2] / "templates")


def test_every_status_has_its_own_label_and_a_known_tone() -> None:
    labels = [look.status_look(status).label for status in TaskStatus]
    assert len(set(labels)) == len(TaskStatus)
    assert {look.status_look(status).tone for status in TaskStatus} <= {
        "neutral",
        "info",
        "ok",
        "fail",
        "warn",
    }
    assert look.status_look("failed") == look.status_look(TaskStatus.FAILED)
    with pytest.raises(ValueError):
        look.status_look("finished")


def test_the_pill_macro_shows_icon_and_word() -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    env.filters.update(JINJA_FILTERS)
    env.globals["status_look"] = look.status_look
    rendered = env.from_string('{% from "macros.html" import pill %}{{ pill(status) }}').render(
        status=TaskStatus.TIMED_OUT
    )
    assert 'class="pill pill-warn"' in rendered and 'data-status="timed_out"' in rendered
    assert "Timed out" in rendered and 'aria-hidden="true">⏱' in rendered


async def test_pages_carry_the_status_table_for_the_browser(make_client: ClientFactory) -> None:
    console: Client = await make_client()
    body = await text_of(console, "/")
    found = re.search(
        r'<script type="application/json" id="taskcast-statuses">(.*?)</script>', body
    )
    assert found is not None
    assert json.loads(found.group(1)) == look.status_table()


def test_the_stylesheets_blocks_are_closed() -> None:
    # An unclosed @media block silently swallows every rule after it into phone widths.
    for sheet in (Path(TEMPLATES).parent / "static").glob("*.css"):
        text = re.sub(r"/\*.*?\*/", "", sheet.read_text(), flags=re.S)
        depth = 0
        for line_number, line in enumerate(text.splitlines(), 1):
            depth += line.count("{") - line.count("}")
            assert depth >= 0, f"{sheet.name}: a block closes twice near line {line_number}"
        assert depth == 0, f"{sheet.name}: {depth} block(s) left open"

"""The event mini-language (contract section D) through the module's exported pure functions."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page

from .harness import PageLog, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

ELEMENT = '<ptig-task><div class="data"><li>old</li></div></ptig-task>'
#: `#status` outside the element's parent: only `^body` reaches it.
LAYOUT = f'<p id="status">old</p><main>{ELEMENT}</main>'
#: `#status` next to the element: `..` reaches it.
SIBLING_LAYOUT = f'<main><p id="status">old</p>{ELEMENT}</main>'
TWO_TARGETS = '<main><ptig-task><div class="a">A</div><div class="b">B</div></ptig-task></main>'


def in_element(inner: str) -> str:
    return f'<p id="status">old</p><main><ptig-task>{inner}</ptig-task></main>'


def in_data(inner: str) -> str:
    return in_element(f'<div class="data">{inner}</div>')


#: The golden table of contract section D: (event data, layout, stage innerHTML afterwards).
GOLDEN: list[tuple[str, str, str]] = [
    ("<li>item 3</li>===>>.data", LAYOUT, in_data("<li>old</li><li>item 3</li>")),
    ("<b>new</b>===>.data", LAYOUT, in_data("<b>new</b>")),
    ("<li>new</li>===<<.data", LAYOUT, in_data("<li>new</li><li>old</li>")),
    ("<i>B</i>===(.data", LAYOUT, in_element('<i>B</i><div class="data"><li>old</li></div>')),
    ("<i>A</i>===).data", LAYOUT, in_element('<div class="data"><li>old</li></div><i>A</i>')),
    (
        "<div class='log'></div>===>>",
        LAYOUT,
        in_element('<div class="data"><li>old</li></div><div class="log"></div>'),
    ),
    ("<b>S</b>===>^body/#status", LAYOUT, f'<p id="status"><b>S</b></p><main>{ELEMENT}</main>'),
    (
        "<b>P</b>===>>../#status",
        SIBLING_LAYOUT,
        f'<main><p id="status">old<b>P</b></p>{ELEMENT}</main>',
    ),
    (
        "<li>a</li><li>b</li>===>>.data",
        LAYOUT,
        in_data('<li>old</li><div class="ajax-temp-item"><li>a</li><li>b</li></div>'),
    ),
    (
        "<li>c</li> ===>> .data",
        LAYOUT,
        in_data('<li>old</li><div class="ajax-temp-item"><li>c</li> </div>'),
    ),
    ("plain text===>>.data", LAYOUT, in_data("<li>old</li>plain text")),
    ("===>>.data", LAYOUT, in_data('<li>old</li><div class="ajax-temp-item"></div>')),
    ("<b>X</b>===>>.missing", LAYOUT, LAYOUT),
    (
        "<i>x</i>===>.a===>>.b",
        TWO_TARGETS,
        '<main><ptig-task><div class="a">A</div><div class="b">B'
        '<div class="ajax-temp-item"><i>x</i>===&gt;.a</div></div></ptig-task></main>',
    ),
]


@pytest_asyncio.fixture(loop_scope="module")
async def lab(page: Page) -> Page:
    """A page that has imported the module as `window.ptig` and has an empty `#stage`."""
    await page.goto("/t/lab")
    await wait_until(page, "() => window.ptig !== undefined")
    return page


async def apply_on_stage(page: Page, layout: str, data: Any) -> tuple[bool, str]:
    """Puts `layout` in `#stage`, applies `data` to its `<ptig-task>`, returns the stage."""
    result: list[Any] = await page.evaluate(
        """([layout, data]) => {
            const stage = document.getElementById('stage');
            stage.innerHTML = layout;
            const applied = window.ptig.applyEvent(stage.querySelector('ptig-task'), data);
            return [applied, stage.innerHTML];
        }""",
        [layout, data],
    )
    return bool(result[0]), str(result[1])


@pytest.mark.parametrize(("data", "layout", "expected"), GOLDEN, ids=[row[0] for row in GOLDEN])
async def test_golden_example(lab: Page, data: str, layout: str, expected: str) -> None:
    applied, stage = await apply_on_stage(lab, layout, data)
    assert stage == expected
    assert applied is (stage != layout)


async def test_plain_text_becomes_a_single_text_node(lab: Page) -> None:
    await apply_on_stage(lab, LAYOUT, "plain text===>>.data")
    node_type = await lab.evaluate("document.querySelector('.data').lastChild.nodeType")
    assert node_type == 3  # Node.TEXT_NODE


async def test_parse_event_tries_operators_in_order_and_keeps_two_pieces(lab: Page) -> None:
    cases = [
        "<b>a</b>===>>.x",
        "<b>a</b>===<<.x",
        "<b>a</b>===>.x",
        "<b>a</b>===(.x",
        "<b>a</b>===).x",
        "a===(b===<<c",  # `<<` is tried before `(`, wherever it is
        "a===>>b===>>c===>>d",  # split on every marker: the rest is dropped
        "a===>b===>c",
        "===>>",
    ]
    parsed = await lab.evaluate("(cases) => cases.map((c) => window.ptig.parseEvent(c))", cases)
    assert parsed == [
        {"html": "<b>a</b>", "op": ">>", "target": ".x"},
        {"html": "<b>a</b>", "op": "<<", "target": ".x"},
        {"html": "<b>a</b>", "op": ">", "target": ".x"},
        {"html": "<b>a</b>", "op": "(", "target": ".x"},
        {"html": "<b>a</b>", "op": ")", "target": ".x"},
        {"html": "a===(b", "op": "<<", "target": "c"},
        {"html": "a", "op": ">>", "target": "b"},
        {"html": "a", "op": ">", "target": "b"},
        {"html": "", "op": ">>", "target": ""},
    ]


async def test_parse_event_reads_an_unmarked_string_as_append_to_the_element(lab: Page) -> None:
    parsed = await lab.evaluate("window.ptig.parseEvent('<p>hi</p> == > >')")
    assert parsed == {"html": "<p>hi</p> == > >", "op": ">>", "target": ""}


async def test_parse_event_returns_null_for_non_strings(lab: Page) -> None:
    parsed = await lab.evaluate(
        "[null, 5, {a: 1}, ['x===>>.data'], true].map((v) => window.ptig.parseEvent(v))"
    )
    assert parsed == [None] * 5


async def test_resolve_target_walks_the_path(lab: Page) -> None:
    await lab.evaluate(
        """() => {
            document.getElementById('stage').innerHTML =
              '<section id="outer"><p id="status"></p><main id="parent">' +
              '<ptig-task id="el"><div class="data" id="data"><b id="deep"></b></div></ptig-task>' +
              '</main></section>';
        }"""
    )
    targets = {
        "": "el",
        ".": "el",
        "./.": "el",
        "..": "parent",
        "../..": "outer",
        ".data": "data",
        " .data ": "data",
        ".data/b": "deep",
        "^section": "outer",
        "^ptig-task": "el",
        "^body/#status": "status",
        "../../#status": "status",
        # Taskcast (D29): spaces next to `..`, `.` and `^` are trimmed instead of failing
        ".. / .. / #status": "status",
        " ^ section ": "outer",
        "#status": None,  # descendants only
        ".missing": None,
        ".data/.missing/..": None,
        "^article": None,
        "[[invalid": None,
        "a:nth-child(": None,
    }
    found = await lab.evaluate(
        """(paths) => paths.map((path) => {
            const node = window.ptig.resolveTarget(document.getElementById('el'), path);
            return node === null ? null : node.id;
        })""",
        list(targets),
    )
    assert dict(zip(targets, found, strict=True)) == targets


async def test_html_to_node_unwraps_exactly_one_child_node(lab: Page) -> None:
    shapes = await lab.evaluate(
        """(cases) => cases.map((html) => {
            const node = window.ptig.htmlToNode(html, document);
            const owned = node.ownerDocument === document;
            return [node.nodeType, node.nodeName, node.textContent, owned];
        })""",
        ["<b>one</b>", "text only", " ", "", "<b>a</b> ", "<i>a</i><i>b</i>"],
    )
    wrapper = [1, "DIV"]
    assert shapes == [
        [1, "B", "one", True],
        [3, "#text", "text only", True],
        [3, "#text", " ", True],
        [*wrapper, "", True],
        [*wrapper, "a ", True],
        [*wrapper, "ab", True],
    ]


async def test_scripts_in_event_html_do_not_run(lab: Page) -> None:
    applied, stage = await apply_on_stage(
        lab, LAYOUT, "<script>window.ran = true</script><b>after</b>===>>.data"
    )
    assert applied
    assert "<script>window.ran = true</script><b>after</b>" in stage
    await apply_on_stage(lab, LAYOUT, "<script>window.ran = true</script>===>.data")
    assert await lab.evaluate("window.ran") is None


async def test_unmarked_string_is_appended_to_the_element(lab: Page) -> None:
    # Taskcast (D30): the seed's first event, which upstream silently drops.
    seed = "<ul class='data'></ul><div name='task_end_info' style='display: none;'>Finish</div>"
    applied, stage = await apply_on_stage(lab, "<ptig-task></ptig-task>", seed)
    assert applied
    assert stage == (
        '<ptig-task><div class="ajax-temp-item"><ul class="data"></ul>'
        '<div name="task_end_info" style="display: none;">Finish</div></div></ptig-task>'
    )


async def test_non_string_data_is_not_applied_and_does_not_throw(
    lab: Page, page_log: PageLog
) -> None:
    for value in [None, 7, {"html": "<b>x</b>"}, ["<b>x</b>===>>.data"], False]:
        applied, stage = await apply_on_stage(lab, LAYOUT, value)
        assert (applied, stage) == (False, LAYOUT)
    assert page_log.errors == []


async def test_insert_before_a_parentless_target_is_a_no_op(lab: Page) -> None:
    result = await lab.evaluate(
        """() => {
            const lone = document.createElement('ptig-task');
            return [window.ptig.applyEvent(lone, '<i>x</i>===('),
                    window.ptig.applyEvent(lone, '<i>y</i>===)'),
                    window.ptig.applyEvent(lone, '<i>z</i>===>>'), lone.outerHTML];
        }"""
    )
    assert result == [False, False, True, "<ptig-task><i>z</i></ptig-task>"]


async def test_socket_url_follows_the_page(lab: Page) -> None:
    urls = await lab.evaluate(
        """() => [
            [{protocol: 'http:', hostname: 'example.org', port: ''}, '/ch/'],
            [{protocol: 'https:', hostname: 'example.org', port: ''}, '/ch/?a=1&b=%20'],
            [{protocol: 'https:', hostname: 'example.org', port: '8443'}, '/ch/'],
            [{protocol: 'http:', hostname: '[::1]', port: '8080'}, 'relative'],
        ].map(([loc, href]) => window.ptig.socketUrl(loc, href))"""
    )
    assert urls == [
        "ws://example.org/ch/",
        "wss://example.org/ch/?a=1&b=%20",
        "wss://example.org:8443/ch/",
        "ws://[::1]:8080relative",
    ]

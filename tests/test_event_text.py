"""A run's events as plain text lines (taskcast.event_text): the page's no-script log and the
output download."""

from __future__ import annotations

import json

from taskcast.event_text import event_html, output_of, text_of


def stored(*data: object) -> list[tuple[int, str]]:
    return [(seq, json.dumps(value)) for seq, value in enumerate(data, 1)]


def test_the_html_part_follows_the_element_s_operator_order() -> None:
    assert event_html("<li>a</li>===>>.data") == "<li>a</li>"
    assert event_html("<i>x</i>===>.a===>>.b") == "<i>x</i>===>.a"  # >> wins, as in the element
    assert event_html("plain") == "plain"


def test_text_of_html_is_its_visible_lines_with_entities_decoded() -> None:
    assert text_of("<ul><li>one &amp; two</li><li>  three\n four </li></ul>") == [
        "one & two",
        "three four",
    ]
    assert text_of("<p>shown</p><script>hidden()</script><style>p{}</style>") == ["shown"]
    assert text_of("<div class='log'></div>") == []


def test_progress_reports_are_kept_apart_and_other_values_as_json() -> None:
    progress = (
        "<div class='ptig-progress'><progress value='2' max='4'></progress>"
        "<span class='ptig-progress-text'>50% · rows</span></div>===<<"
    )
    output = output_of(
        stored("<ol class='data'></ol>", "<li>row 1</li>===>>.data", progress, {"n": 1}, None)
    )
    assert output.lines == ["row 1", '{"n": 1}', "null"]
    assert output.progress == "50% · rows"
    assert output_of([(1, "not json")]).lines == []


def test_new_lines_break_lines_only_in_pre() -> None:
    assert text_of("<pre>a\n  b</pre>plain\ntext") == ["a", "b", "plain text"]

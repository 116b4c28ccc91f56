"""Progress events (taskcast.screen.ProgressReport) and `cproxy.progress()`."""

from __future__ import annotations

from taskcast.publish import StreamPublisher, TaskContext
from taskcast.screen import ProgressReport


def test_first_report_puts_the_bar_first_in_the_element() -> None:
    event = ProgressReport().event(0, 10, "", now=100.0)
    assert event == (
        "<div class='ptig-progress'><progress value='0' max='10'></progress>"
        "<span class='ptig-progress-text'>0%</span></div>===<<"
    )


def test_later_reports_replace_the_bar_with_percentage_and_time_left() -> None:
    report = ProgressReport()
    report.event(0, 10, "", now=100.0)
    event = report.event(4, 10, "rows", now=108.0)
    assert event == (
        "<progress value='4' max='10'></progress>"
        "<span class='ptig-progress-text'>40% · about 12 s left · rows</span>===>.ptig-progress"
    )


def test_reports_are_throttled_but_the_last_one_always_goes_out() -> None:
    report = ProgressReport()
    assert report.event(0, 100, "", now=0.0) is not None
    assert report.event(1, 100, "", now=0.05) is None
    assert report.event(2, 100, "", now=0.25) is not None
    assert report.event(3, 100, "", now=0.26) is None
    last = report.event(100, 100, "", now=0.27)
    assert last is not None and "100%" in last and "left" not in last


def test_text_is_escaped_and_unknown_totals_count_up() -> None:
    report = ProgressReport()
    first = report.event(3, None, "<script>x</script>", now=0.0)
    assert first is not None
    assert "&lt;script&gt;x&lt;/script&gt;" in first and "<script>" not in first
    assert "3 done" in first and "<progress></progress>" in first


def test_long_durations_read_in_minutes_and_hours() -> None:
    report = ProgressReport()
    report.event(0, 100, "", now=0.0)
    assert "about 15 min left" in (report.event(10, 100, "", now=100.0) or "")
    report = ProgressReport()
    report.event(0, 1000, "", now=0.0)
    assert "about 2.5 h left" in (report.event(10, 1000, "", now=90.9) or "")


def test_stream_publisher_sends_progress_as_events() -> None:
    sent: list[str] = []
    publisher = StreamPublisher(TaskContext("t" * 32, "rows__1", sent.append), "rows__1")
    publisher.progress(1, 2)
    publisher.progress(2, 2)
    assert len(sent) == 2
    assert sent[0].endswith('===<<"') and sent[1].endswith('===>.ptig-progress"')

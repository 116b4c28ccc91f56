"""Demo tasks: the two examples of Pytigon's task documentation, as written, plus two more.

Only the import lines differ from the originals (`django_q.tasks` -> `taskcast.tasks`,
`pytigon_lib.schtasks.publish` -> `taskcast.publish`). `python run.py` loads this module, so
`async_task("tasks.long_running_process")` and `async_task("tasks.test_task", ...)` work as
they do in Pytigon.
"""

import asyncio
import time

from taskcast.publish import RemoteScreen, publish


# fmt: off
# Example 1: plain Django Q, no communication with the page.
def long_running_process():
    print("start")
    time.sleep(100)
    print("end")
    return 1


# Example 2: a @publish task that talks to the page through cproxy.
@publish("demo")
def test_task(cproxy=None, **kwargs):
    if 'param' in kwargs:
        print(kwargs['param'])
    if cproxy:
        cproxy.send_event("<ul class='data'></ul><div name='task_end_info' style='display: none;'>Finish</div>")
    for i in range(0,30):
        if cproxy:
            cproxy.send_event("<li>item %d</li>===>>.data" % i)
        time.sleep(1)
    return True
# fmt: on


@publish("async_demo")
async def async_countdown(cproxy=None, start=5, delay=0.5):
    """Count down on the page from an async task running on the server's event loop."""
    with RemoteScreen(cproxy) as screen:
        for remaining in range(start, 0, -1):
            screen.info(f"{remaining}...")
            await asyncio.sleep(delay)
        screen.log("lift-off")
    return start


@publish("progress")
def count_rows(cproxy=None, rows=20, delay=0.2):
    """Work through rows in a worker process, reporting progress to the page."""
    if cproxy:
        cproxy.send_event("<ol class='data'></ol>")
    for row in range(1, rows + 1):
        time.sleep(delay)
        if cproxy:
            cproxy.send_event("<li>row %d done</li>===>>.data" % row)
            cproxy.progress(row, rows, "importing rows")
    return rows


@publish("tour")
async def mini_language_tour(cproxy=None, pause=0.6):
    """Show each operator of the event mini-language on the page, one after another."""
    steps = [
        "<h3>The event mini-language</h3><div class='data'></div><p id='status'>status</p>",
        "<li>appended with ===&gt;&gt;</li>===>>.data",
        "<li>put first with ===&lt;&lt;</li>===<<.data",
        "<i>inserted before .data with ===(</i>===(.data",
        "<i>inserted after .data with ===)</i>===).data",
        "<b>#status replaced with ===&gt;, found from the body</b>===>^body/#status",
        "<b>.data's content replaced with ===&gt;</b>===>.data",
    ]
    for step in steps:
        if cproxy:
            cproxy.send_event(step)
        await asyncio.sleep(pause)
    return len(steps)

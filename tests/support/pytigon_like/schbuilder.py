"""Pytigon's schbuilder task: events with spaces around the marker, started without an id."""

import time

from taskcast.publish import publish
from tests.support.pytigon_like import PAUSE


@publish("test")
def test(cproxy=None, **kwargs):
    if cproxy:
        cproxy.send_event(
            "<ul class='data'></ul><div name='task_end_info' style='display: none;'>Finish</div>"
        )
    for i in range(0, 3):
        print("item:", i)
        if cproxy:
            cproxy.send_event("<li>item %d</li> ===>> .data" % i)
        time.sleep(PAUSE)
    return "Hello world"

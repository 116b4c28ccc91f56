"""Pytigon's tasks_demo: a @publish task started with a task_publish_id, and a plain task."""

import time

from taskcast.publish import publish
from tests.support.pytigon_like import PAUSE


@publish("demo")
def test_task(cproxy=None, **kwargs):
    if "param" in kwargs:
        print(kwargs["param"])
    if cproxy:
        cproxy.send_event(
            "<ul class='data'></ul><div name='task_end_info' style='display: none;'>Finish</div>"
        )
    for i in range(0, 3):
        if cproxy:
            cproxy.send_event("<li>item %d</li>===>>.data" % i)
        time.sleep(PAUSE)
    return True


def test_task2(cproxy=None, **kwargs):
    for i in range(0, 3):
        print("item:", i)
        time.sleep(PAUSE)
    return "tast task2 result"


def start_test_task():
    """What the view does: start the task, and give the page the stream to watch."""
    from taskcast.tasks import async_task

    id = "test1"
    task_id = async_task(
        "tests.support.pytigon_like.tasks_demo.test_task", task_publish_id=id, param=123
    )
    return {"task_id": task_id, "id": "demo__" + id}


def start_test_task2():
    from taskcast.tasks import async_task

    task_id = async_task("tests.support.pytigon_like.tasks_demo.test_task2")
    return {"ret": task_id}

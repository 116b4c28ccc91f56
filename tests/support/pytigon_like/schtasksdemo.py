"""Pytigon's older schtasksdemo: `init_schedule(scheduler, cmd, http)` with nested async
functions, the scheduler passed to them, range() in schedule strings, a task that fails, and a
@publish task that logs through RemoteScreen."""

import asyncio
import time

from taskcast.publish import publish
from taskcast.remote_screen import RemoteScreen
from tests.support.pytigon_like import PAUSE

#: what the scheduled functions saw, for the tests
SEEN = []


def init_schedule(scheduler, cmd, http):
    async def hello():
        SEEN.append("hello")

    async def hello_long():
        SEEN.append("hello_long start")
        await asyncio.sleep(1000)

    async def hello1(name="", scheduler=None):
        if scheduler:
            tasks = scheduler.get_tasks("hello1")
            if len(tasks) > 0:
                SEEN.append(("hello1", name, tasks[0][4]))
                return
        SEEN.append("Hello world 1")

    async def hello2(scheduler):
        SEEN.append("hello2")
        x = p / 10  # noqa: F821 (the demo's deliberate failure)

    async def exit(scheduler):
        scheduler.clear()

    SEEN.append(("init", cmd, http))
    scheduler.add_task("in_minute_intervals(1)", hello)
    scheduler.add_task("in_minute_intervals(2)", hello_long)
    scheduler.add_task("in_second_intervals(3)", hello)
    scheduler.add_task("in_second_intervals(4)", hello2, scheduler)
    scheduler.add_task("hourly(at='2,3')", hello)
    scheduler.add_task("daily(at='22:07')", hello)
    scheduler.add_task("monthly(day=1, at='22:07')", hello)
    scheduler.add_task("monthly(day=1, at='22:07')", hello1, name="monthly", scheduler=scheduler)
    scheduler.add_task(
        "daily(at='22:07', in_weekdays=(1, 2, 3, 4, 5))",
        hello1,
        name="monthly",
        scheduler=scheduler,
    )
    scheduler.add_task(
        "hourly(at=7,in_weekdays=range(1,6), in_hours=range(3,5))",
        hello1,
        name="monthly",
        scheduler=scheduler,
    )
    scheduler.add_task(
        "in_second_intervals(in_weekdays=range(1,2), in_hours=range(3,5))",
        hello1,
        name="in_second_intervals",
        scheduler=scheduler,
    )
    scheduler.add_task("M(day=31, at='22:07')", hello1, name="monthly", scheduler=scheduler)
    scheduler.add_task("M", hello1, name="monthly", scheduler=scheduler)
    scheduler.add_task(scheduler.s(), exit, scheduler=scheduler)


@publish("demo")
def fun2(cproxy=None, **kwargs):
    with RemoteScreen(cproxy, direction="up") as out:
        out.log("AAAA1")
        for i in range(0, 3):
            print("AAAA2")
            out.log("item %d" % i)
            time.sleep(PAUSE)
        out.info("Info info info")
        out.warning("Warning warning warning")
        out.error("Error error error")
    return "Hello world"

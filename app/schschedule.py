"""`pytigon_lib.schtasks.schschedule` under its Taskcast name: Pytigon's schedule helpers.

The scheduler itself is the server's (`init_schedule(scheduler, cmd, http)` receives it); see
docs/schedules.md.
"""

from taskcast.schedules.helpers import (
    daily,
    hourly,
    in_minute_intervals,
    in_second_intervals,
    monthly,
)

__all__ = ["daily", "hourly", "in_minute_intervals", "in_second_intervals", "monthly"]

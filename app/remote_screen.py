"""`pytigon_lib.schtasks.remote_screen` under its Taskcast name: `RemoteScreen` and `to_txt`."""

from taskcast.screen import RemoteScreen, to_txt

__all__ = ["RemoteScreen", "to_txt"]

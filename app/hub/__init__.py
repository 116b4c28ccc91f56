"""Streams and their subscribers: the in-process broadcast hub, free of any wire protocol."""

"""The SQLite store of task records and their events."""

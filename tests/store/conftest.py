"""Shared by the store's tests: stores that close themselves, task records, and a look at the file
from outside."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskcast.records import TaskRecord, TaskStatus
from taskcast.store.store import Store

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
MakeStore = Callable[..., Store]


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[MakeStore]:
    """Opens stores (default: a file in a folder that does not exist yet) and closes them all."""
    stores: list[Store] = []

    def make(path: str | Path | None = None, **options: Any) -> Store:
        store = Store(tmp_path / "data" / "tasks.db" if path is None else path, **options)
        stores.append(store)
        store.open()
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()


def task(n: int, **changes: Any) -> TaskRecord:
    """A task record; task n is enqueued n seconds after T0."""
    record = TaskRecord(
        id=f"id{n}", name=f"name{n}", func="tasks.work", enqueued=T0 + timedelta(seconds=n)
    )
    return record.replace(**changes)


def done(n: int, status: TaskStatus = TaskStatus.SUCCESS, **changes: Any) -> TaskRecord:
    """A finished task record; task n stopped n seconds after T0."""
    return task(n, status=status, started=T0, stopped=T0 + timedelta(seconds=n), **changes)


def sql(path: Path, statement: str) -> list[Any]:
    """Run one statement on a connection of our own, as another process would."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(statement).fetchall()

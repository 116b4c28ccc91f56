"""A database file deleted or replaced under a running server is noticed: one ERROR in the log,
and `/api/health` says so, instead of everything going quietly at shutdown."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from taskcast import tasks
from taskcast.web.keys import STORE
from tests.conftest import ClientFactory
from tests.support.eventually import eventually


async def health(client: Any, status: int) -> dict[str, Any]:
    response = await client.get("/api/health")
    assert response.status == status
    body: dict[str, Any] = await response.json()
    return body


def lose(path: Path, fate: str, tmp_path: Path) -> None:
    """Delete the file, or put another file in its place, as a careless cleanup would."""
    if fate == "deleted":
        path.unlink()
    else:
        other = tmp_path / "other.sqlite3"
        other.write_bytes(b"")
        os.replace(other, path)


@pytest.mark.parametrize("fate", ["deleted", "replaced"])
async def test_a_database_file_deleted_or_replaced_is_noticed_and_reported_once(
    make_client: ClientFactory, settings: Any, tmp_path: Path, caplog: Any, fate: str
) -> None:
    client = await make_client()
    assert (await health(client, 200))["status"] == "ok"
    lose(Path(settings.database), fate, tmp_path)
    with caplog.at_level(logging.ERROR, logger="taskcast.store"):
        for n in range(3):  # each commit looks at the file
            task_id = tasks.async_task("tests.support.sample_tasks.async_identity", n)
            assert await tasks.wait_result(task_id, timeout=10) == n
        store = client.app[STORE]
        await eventually(lambda: store.file_problem, 10, "the store notices the lost file")
    body = await health(client, 503)
    assert body["status"] == "store_lost"
    assert fate in body["store"] and "lost when the server stops" in body["store"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and fate in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in errors]

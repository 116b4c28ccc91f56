"""Tests of the worker's side of a process task that need no worker process."""

from __future__ import annotations

import pickle

import pytest

from taskcast.errors import TaskSpecError
from taskcast.runtime import worker
from taskcast.spec import ProcessCall


def test_a_worker_resolves_a_dotted_path_with_the_same_importer_and_errors_as_async_task() -> None:
    call = ProcessCall(
        pickle.dumps("tests.support.sample_tasks.no_such_task"), pickle.dumps(()), pickle.dumps({})
    )
    with pytest.raises(TaskSpecError, match="has no function 'no_such_task'"):
        worker.run("0" * 32, None, call)

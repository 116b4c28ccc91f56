"""A failed task's headline and its traceback without the machinery's frames (taskcast.failure)."""

from __future__ import annotations

import os

import taskcast
from taskcast.failure import explain, without_machinery

OURS = os.path.join(os.path.dirname(taskcast.__file__), "runtime", "execution.py")
TRACEBACK = f'''Traceback (most recent call last):
  File "{OURS}", line 120, in run
    result = await call()
             ^^^^^^^^^^^^
  File "/usr/lib/python3.11/concurrent/futures/process.py", line 256, in _process_worker
    r = call_item.fn(*call_item.args, **call_item.kwargs)
  File "/srv/app/jobs.py", line 7, in import_rows
    raise KeyError("row 12")
KeyError: 'row 12'
'''


def test_headline_is_the_exception_and_its_message() -> None:
    failure = explain(f"'row 12' : {TRACEBACK}")
    assert failure is not None
    assert (failure.exception, failure.message) == ("KeyError", "'row 12'")


def test_taskcast_and_concurrent_futures_frames_are_left_out() -> None:
    failure = explain(f"'row 12' : {TRACEBACK}")
    assert failure is not None
    assert failure.hidden_frames == 2
    assert failure.traceback == (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/jobs.py", line 7, in import_rows\n'
        '    raise KeyError("row 12")\n'
        "KeyError: 'row 12'\n"
    )


def test_chained_exceptions_keep_their_separators_and_the_last_is_the_headline() -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/srv/app/a.py", line 1, in f\n'
        "    open(path)\n"
        "FileNotFoundError: [Errno 2] no such file\n"
        "\n"
        "During handling of the above exception, another exception occurred:\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app/a.py", line 3, in f\n'
        "    raise mymod.ImportFailed('no input\\nat all')\n"
        "mymod.ImportFailed: no input\n"
        "at all\n"
    )
    failure = explain(f"no input : {text}")
    assert failure is not None
    assert failure.exception == "mymod.ImportFailed"
    assert failure.message == "no input\nat all"
    assert "During handling of the above exception" in failure.traceback
    assert failure.hidden_frames == 0


def test_an_exception_without_a_message() -> None:
    failure = explain(
        ' : Traceback (most recent call last):\n  File "/x.py", line 1\nStopIteration\n'
    )
    assert failure is not None and (failure.exception, failure.message) == ("StopIteration", "")


def test_an_error_that_is_not_a_traceback_is_the_message() -> None:
    failure = explain("timed out after 3 s")
    assert failure is not None
    assert (failure.exception, failure.message, failure.traceback) == (
        "",
        "timed out after 3 s",
        "",
    )
    assert explain(None) is None and explain("  ") is None


def test_without_machinery_keeps_a_traceback_of_user_frames_unchanged() -> None:
    text = 'Traceback (most recent call last):\n  File "/srv/x.py", line 2, in g\n    g()\nE: m\n'
    assert without_machinery(text) == (text, 0)

"""scripts/serve.sh: says what it does on a first run, installs again only when pyproject.toml
changes, and runs the server with the arguments it was given.

The script runs in a copy of its folder against stand-ins for `python3` and `.venv/bin/python`
that record their calls, so no virtualenv is made and nothing is installed."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: `.venv/bin/python`: records its arguments, one call a line
VENV_PYTHON = """#!/bin/sh
echo "$*" >>"$CALLS"
"""
#: `python3` on PATH: `-m venv .venv` makes a .venv whose python is the recorder above
PYTHON3 = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$VENV_PYTHON_STANDIN" "$3/bin/python" && echo "venv $3" >>"$CALLS"
fi
"""


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def serve(checkout: Path, tools: Path, *args: str) -> tuple[str, list[str]]:
    """Run serve.sh in `checkout`: what it printed, and the calls the stand-ins recorded."""
    calls = checkout / "calls.txt"
    calls.write_text("")
    env = {
        **os.environ,
        "PATH": f"{tools}:{os.environ['PATH']}",
        "CALLS": str(calls),
        "VENV_PYTHON_STANDIN": str(tools / "venv-python"),
    }
    done = subprocess.run(
        ["sh", "scripts/serve.sh", *args],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout + done.stderr, calls.read_text().splitlines()


def test_serve_sh_installs_once_and_again_only_when_pyproject_changes(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for name in ("serve.sh", "common.sh"):
        shutil.copy(ROOT / "scripts" / name, checkout / "scripts" / name)
    shutil.copy(ROOT / "pyproject.toml", checkout / "pyproject.toml")
    tools = tmp_path / "tools"
    tools.mkdir()
    executable(tools / "python3", PYTHON3)
    executable(tools / "venv-python", VENV_PYTHON)

    said, calls = serve(checkout, tools, "--port", "9001")
    assert said.splitlines() == [
        "serve.sh: first run: setting up .venv",
        "serve.sh: creating the virtualenv .venv",
        "serve.sh: updating pip in .venv",
        "serve.sh: installing Taskcast and its dependencies into .venv (a minute on a first run)",
        "serve.sh: installed: starting the server",
    ]
    assert calls == [
        "venv .venv",
        "-m pip install --quiet --upgrade pip",
        "-m pip install --quiet -e .",
        "run.py --port 9001",
    ]

    said, calls = serve(checkout, tools)
    assert said.splitlines() == [
        "serve.sh: nothing changed since the last install: starting the server"
    ]
    assert calls == ["run.py"]

    with (checkout / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a new dependency, say\n")
    said, calls = serve(checkout, tools)
    assert said.splitlines()[0] == (
        "serve.sh: pyproject.toml has changed since the last install: updating .venv"
    )
    assert calls == [
        "-m pip install --quiet --upgrade pip",
        "-m pip install --quiet -e .",
        "run.py",
    ]
    assert serve(checkout, tools)[1] == ["run.py"]

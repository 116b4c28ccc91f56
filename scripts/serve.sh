#!/bin/sh
# Set up a virtualenv with Taskcast in it, then run the server (python run.py ...).
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/python run.py "$@"

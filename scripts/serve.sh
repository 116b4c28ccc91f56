#!/bin/sh
# Set up a virtualenv with Taskcast in it, then run the server (python run.py ...).
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
make_venv
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/python run.py "$@"

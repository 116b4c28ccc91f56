#!/bin/sh
# Set up a virtualenv with Taskcast in it, then run the server (python run.py ...).
# The install runs on the first start and again only when pyproject.toml has changed: a stamp
# of its hash is kept inside .venv. The install is editable, so changed code needs none.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
stamp=.venv/.serve-installed
wanted=$(sha256sum pyproject.toml | cut -d ' ' -f 1)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    say "nothing changed since the last install: starting the server"
else
    if [ -x .venv/bin/python ]; then
        say "pyproject.toml has changed since the last install: updating .venv"
    else
        say "first run: setting up .venv"
    fi
    make_venv
    say "installing Taskcast and its dependencies into .venv (a minute on a first run)"
    .venv/bin/python -m pip install --quiet -e .
    echo "$wanted" >"$stamp"
    say "installed: starting the server"
fi
exec .venv/bin/python run.py "$@"

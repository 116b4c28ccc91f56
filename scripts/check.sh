#!/bin/sh
# Lint and type-check a checkout: ruff, then mypy --strict on the package and on the tests.
# mypy cannot follow the editable install's mapping of app/ onto taskcast, so it reads the
# package through a link of that name in a temporary folder.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/mypy ] || .venv/bin/python -m pip install --quiet -e ".[dev]"
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
ln -s "$PWD/app" "$shim/taskcast"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
MYPYPATH="$shim" .venv/bin/mypy -p taskcast
MYPYPATH="$shim" .venv/bin/mypy

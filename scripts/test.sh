#!/bin/sh
# Set up a virtualenv with the test tools and Debian's chromium, then run the whole test suite.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
# The browser tests drive Debian's chromium (Playwright's own browser download is not used);
# the benchmark's smoke test runs its load client with Node.js.
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
    else
        echo "missing:$missing (install them with apt-get)" >&2
    fi
fi
exec .venv/bin/python -m pytest "$@"

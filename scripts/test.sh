#!/bin/sh
# Set up a virtualenv with the test tools and Debian's chromium, then run the whole test suite.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
if [ ! -x /usr/bin/chromium ]; then
    # The browser tests drive Debian's chromium; Playwright's own browser download is not used.
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    else
        echo "chromium is missing: install Debian's chromium package (apt-get install chromium)" >&2
    fi
fi
exec .venv/bin/python -m pytest "$@"

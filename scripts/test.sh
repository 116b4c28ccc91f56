#!/bin/sh
# Set up a virtualenv with the test tools and Debian's chromium, then run the whole test suite.
set -eu
cd "$(dirname "$0")/.."
. scripts/common.sh
make_venv
# The test extras include `build`: the packaging test builds a wheel and an sdist, and installs
# the wheel into a fresh virtualenv with pip, from the package index pip is configured with.
.venv/bin/python -m pip install --quiet -e ".[test]"
# The browser tests drive Debian's chromium (Playwright's own browser download is not used);
# the benchmark's smoke test runs its load client with Node.js; the Redis engine's tests run
# redis-server.
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
# The Redis engine's tests start real redis-server processes (Debian's package, Redis 7).
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
if [ -n "$missing" ] && ! apt_install $missing; then
    echo "going on without:$missing (the tests that need it skip, or fail under CI)" >&2
fi
# The browser tests check every page with axe-core, an npm package (package.json).
node_tools || echo "going on without axe-core (the accessibility checks fail)" >&2
exec .venv/bin/python -m pytest "$@"

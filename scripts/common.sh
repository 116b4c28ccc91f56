# Sourced by serve.sh and test.sh (not run by itself): Debian packages, and the checkout's .venv.

# say TEXT: tell the person running the script what it is doing now.
say() {
    echo "$(basename "$0"): $*"
}

# apt_install PACKAGE...: install Debian packages as root, or through sudo.
apt_install() {
    say "installing $* with apt-get"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    else
        echo "missing: $* (install them with apt-get)" >&2
        return 1
    fi
}

# make_venv: .venv in the checkout, with a current pip. Debian's python3 makes virtualenvs only
# with python3-venv (ensurepip), which a fresh machine does not have; the packaging test makes
# one more virtualenv from .venv's Python, so it needs it too.
make_venv() {
    if [ ! -x .venv/bin/python ]; then
        python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
        say "creating the virtualenv .venv"
        python3 -m venv .venv
    fi
    say "updating pip in .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
}

# node_tools: the npm packages the browser tests load into pages (axe-core), from package.json
# and package-lock.json, with Debian's npm when the machine has none. `npm ci` runs again only
# when the lock file is newer than what node_modules holds.
node_tools() {
    command -v npm >/dev/null 2>&1 || apt_install npm || return 1
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
}

"""Start a Taskcast server from a checkout: `python run.py [--host H] [--port P] [--db PATH] ...`.

The same as the installed `taskcast` command; `python run.py --help` lists the flags.
"""

from __future__ import annotations

try:
    from taskcast.cli import main
except ModuleNotFoundError as missing:  # pragma: no cover - says how to mend a checkout
    if missing.name != "taskcast":
        raise
    raise SystemExit(
        "Taskcast is not installed in this Python. In a checkout run `sh scripts/serve.sh`, "
        "or `pip install -e .` first."
    ) from None

if __name__ == "__main__":
    main()

"""`python -m taskcast [flags]`: the same as the `taskcast` command."""

from taskcast.cli import main

if __name__ == "__main__":
    main()

"""Running tasks: the runner, execution by kind, the process pool and its workers."""

"""A small intranet tool (a CSV importer) that embeds Taskcast in a few lines."""

"""Browser tests: the <ptig-task> element in Debian's chromium, driven by Playwright."""

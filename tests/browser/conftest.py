"""Fixtures for the browser tests: Debian's chromium through Playwright, and the loopback site.

Launching chromium costs about a second, so the browser and the site live for a test module and
every test of these modules runs in the module's event loop (`pytestmark` in each module says
so). Each test still gets a fresh browser context, page, page set and fake channel.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright

from tests.support.chromium import CHROMIUM_ARGS, require_chromium

from .harness import PROBE_JS, PageLog, Site


@pytest.fixture(scope="module")
def chromium() -> Path:
    return require_chromium()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served_site() -> AsyncIterator[Site]:
    """The site's aiohttp app (static folder, test pages, fake channel) on a free loopback port."""
    site = Site()
    server = TestServer(site.make_app(), host="127.0.0.1")
    await server.start_server()
    site.server = server
    yield site
    await server.close()


@pytest_asyncio.fixture(loop_scope="module")
async def site(served_site: Site) -> AsyncIterator[Site]:
    served_site.reset()
    yield served_site
    await served_site.close_connections()


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Browser, site: Site, page_log: PageLog) -> AsyncIterator[Page]:
    """A fresh page whose relative URLs go to the site; it must not raise uncaught errors."""
    context = await browser.new_context(base_url=site.root)
    await context.add_init_script(PROBE_JS)
    tab = await context.new_page()
    tab.on("console", page_log.on_console)
    tab.on("pageerror", page_log.on_error)
    yield tab
    await context.close()
    assert page_log.errors == [], "the page raised uncaught errors"

"""`python -m examples.intranet_tool`: the CSV importer on http://127.0.0.1:8081/."""

import logging

from aiohttp import web

from examples.intranet_tool.app import make_app

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    web.run_app(make_app(), host="127.0.0.1", port=8081)

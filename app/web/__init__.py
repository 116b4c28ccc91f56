"""The aiohttp side of Taskcast: the app factory, the channel, the pages."""

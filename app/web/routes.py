"""The URL map on one screen."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from app.web import channel, views


def setup(app: web.Application, static: Path) -> None:
    app.router.add_get("/", views.index, name="index")
    app.router.add_get("/tasks/{id}", views.task_page, name="task")
    app.router.add_get("/demo", views.demo, name="demo")
    app.router.add_get("/demo/start", views.demo_start, name="demo_start")
    app.router.add_get("/demo/watch", views.demo_watch, name="demo_watch")
    app.router.add_get("/demo/frames", views.demo_frames, name="demo_frames")
    app.router.add_get("/demo/tour", views.demo_tour, name="demo_tour")
    app.router.add_get(channel.PATH, channel.channel, name="channel")
    app.router.add_static("/static/", static, name="static")

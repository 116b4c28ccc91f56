"""The URL map on one screen: every route of Taskcast, and which app it goes on."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from taskcast.web import (
    api,
    channel,
    feed,
    login,
    openapi,
    schedules,
    start_forms,
    task_list,
    task_page,
    task_stats,
)
from taskcast.web import demo as demo_pages


def add_routes(
    host: web.Application,
    taskcast: web.Application,
    *,
    channel_path: str,
    static: Path,
    demo: bool,
) -> None:
    """The Pytigon channel on `host` at its contract path; everything else on `taskcast`, under
    Taskcast's base path (one app and the root for `create_app`, a sub-app when embedded). The
    demo pages only when `demo`: they start the standalone server's `tasks` module."""
    host.router.add_get(channel_path, channel.channel, name="taskcast_channel")

    router = taskcast.router
    # the console
    router.add_get("/", task_list.index, name="index")
    router.add_post("/tasks/cancel", task_list.bulk_cancel, name="bulk_cancel")
    router.add_get("/stats", task_stats.stats_page, name="stats")
    router.add_get("/purge", task_stats.purge_form, name="purge_form")
    router.add_post("/purge", task_stats.purge, name="purge")
    router.add_get("/tasks/{id}", task_page.task_page, name="task")
    router.add_post("/tasks/{id}/cancel", task_page.cancel, name="cancel")
    router.add_post("/tasks/{id}/again", task_page.run_again, name="run_again")
    router.add_get("/tasks/{id}/output.txt", task_page.output_txt, name="task_output")
    router.add_get("/tasks/{id}/result.json", task_page.result_json, name="task_result")
    router.add_get("/tasks/{id}/traceback.txt", task_page.traceback_txt, name="task_traceback")
    router.add_get("/registry", start_forms.registry_page, name="registry")
    router.add_get("/start/{name}", start_forms.start_form, name="start_form")
    router.add_post("/start/{name}", start_forms.start, name="start")
    router.add_get("/schedules", schedules.schedules_page, name="schedules")
    router.add_get("/schedules/{name}/delete", schedules.confirm_delete, name="schedule_delete")
    router.add_post("/schedules/{name}/{action}", schedules.page_action, name="schedule_action")
    router.add_get("/login", login.login_form, name="login_form")
    router.add_post("/login", login.login, name="login")
    router.add_post("/logout", login.logout, name="logout")
    # demo pages
    if demo:
        router.add_get("/demo", demo_pages.demo, name="demo")
        router.add_post("/demo/start", demo_pages.demo_start, name="demo_start")
        router.add_get("/demo/watch", demo_pages.demo_watch, name="demo_watch")
        router.add_get("/demo/frames", demo_pages.demo_frames, name="demo_frames")
        router.add_get("/demo/tour", demo_pages.demo_tour, name="demo_tour")
    # the JSON API
    router.add_post("/api/tasks", api.start_task, name="api_start")
    router.add_get("/api/tasks", api.list_tasks, name="api_tasks")
    router.add_get("/api/tasks/{id}", api.get_task, name="api_task")
    router.add_post("/api/tasks/{id}/cancel", api.cancel_task, name="api_cancel")
    router.add_get("/api/tasks/{id}/events", api.task_events, name="api_events")
    router.add_get("/api/registry", api.registry, name="api_registry")
    router.add_get("/api/health", api.health, name="api_health")
    router.add_get("/api/activity", api.activity_now, name="api_activity")
    router.add_get("/api/schedules", schedules.api_list, name="api_schedules")
    router.add_get("/api/schedules/{name}", schedules.api_detail, name="api_schedule")
    router.add_post("/api/schedules/{name}/{action}", schedules.api_action, name="api_schedule_run")
    router.add_delete("/api/schedules/{name}", schedules.api_delete, name="api_schedule_delete")
    # the API's description (every route under /api/ is in it: tests/web/test_openapi.py)
    router.add_get("/api/openapi.json", openapi.openapi_json, name="api_openapi")
    # the console's live feed, and the element and page assets
    router.add_get("/api/feed", feed.feed_socket, name="feed")
    router.add_static("/static/", static, name="static")

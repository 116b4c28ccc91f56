"""The start forms: the registry page, forms built from signatures and docstrings, refusals that
keep what was typed, and the stream id a start gets when it names none."""

from __future__ import annotations

import re
from typing import Any

import pytest

from taskcast import tasks
from taskcast.errors import StreamBusyError
from tests.conftest import ClientFactory
from tests.support.pages import Client, text_of

TASKS = "tests.support.console_tasks"
FORMS = "tests.support.form_tasks"


@pytest.fixture
async def console(make_client: ClientFactory) -> Client:
    client: Client = await make_client(task_modules=[TASKS, FORMS])
    return client


def field(form: str, name: str) -> str:
    """The markup of one field of a start form (its `div.field`)."""
    match = re.search(
        rf'<div class="field[^"]*">\s*<label for="f-{name}">.*?</div>\s*</div>', form, re.S
    )
    assert match is not None, f"no field {name}"
    return match.group(0)


async def task_count(client: Client) -> int:
    total: int = (await (await client.get("/api/tasks")).json())["total"]
    return total


async def started_task(response: Any) -> str:
    assert response.status == 303, await response.text()
    location: str = response.headers["Location"]
    return location.removeprefix("/tasks/")


async def test_the_registry_lists_summaries_parameters_and_links(console: Client) -> None:
    registry = await text_of(console, "/registry")
    assert "Multiply two whole numbers." in registry and "second line" not in registry
    # the summary is the docstring's whole first paragraph, joined
    assert "Build the monthly sales report for one region." in registry
    assert f'href="/start/{FORMS}.monthly_report"' in registry
    assert '<code class="param" title="whole number, required">a: int</code>' in registry
    assert '<code class="param" title="whole number">b: int=2</code>' in registry


async def test_the_form_shows_labels_help_types_and_defaults_from_the_docstring(
    console: Client,
) -> None:
    form = await text_of(console, f"/start/{FORMS}.monthly_report")
    assert '<p class="summary">Build the monthly sales report for one region.</p>' in form
    assert "The report is written to the shared folder." in form and "report&#39;s path" not in form
    region = field(form, "region")
    assert '<label for="f-region">' in region and 'id="f-region" name="region"' in region
    assert " required" in region and "(required)" in region
    assert "Sales region code, such as &#34;EU&#34; or &#34;US&#34;." in region
    assert 'aria-describedby="h-region"' in region and ">text</span>" in region
    year = field(form, "year")
    assert "Calendar year to report on; earlier years come from the archive." in year
    assert 'type="number" inputmode="numeric" step="1"' in year and ">whole number</span>" in year
    scale = field(form, "scale")
    assert 'step="any"' in scale and 'value="1.0"' in scale and "default <code>1.0</code>" in scale
    assert " required" not in scale
    dry_run = field(form, "dry_run")
    assert 'type="checkbox"' in dry_run and "checked" not in dry_run
    assert "Only check the inputs." in dry_run and "default <code>False</code>" in dry_run


async def test_numpy_and_sphinx_docstrings_give_help_too(console: Client) -> None:
    resize = await text_of(console, f"/start/{FORMS}.resize")
    assert "Target width in pixels." in field(resize, "width")
    assert "Text written under each image." in field(resize, "label")
    height = field(resize, "height")
    assert 'type="number" inputmode="numeric"' in height and ">whole number</span>" in height
    assert 'value=""' in height and " required" not in height


async def test_an_optional_number_is_converted_or_left_to_its_default(console: Client) -> None:
    for typed, expected in (("480", 480), ("", None)):
        response = await console.post(
            f"/start/{FORMS}.resize",
            data={"width": "640", "height": typed},
            allow_redirects=False,
        )
        record = await tasks.wait_task(await started_task(response), timeout=10)
        assert record.kwargs.get("height") == expected and record.result == 640
    export = await text_of(console, f"/start/{FORMS}.export")
    assert "How many rows to export." in field(export, "rows")
    assert "the count" not in export


async def test_a_form_starts_the_task_with_typed_values(console: Client) -> None:
    response = await console.post(
        f"/start/{FORMS}.monthly_report",
        data={"region": "EU", "year": "2025", "scale": "2.5", "dry_run": "on"},
        allow_redirects=False,
    )
    record = await tasks.wait_task(await started_task(response), timeout=10)
    assert record.result == "EU-2025-2.5-True"
    assert record.kwargs == {"region": "EU", "year": 2025, "scale": 2.5, "dry_run": True}
    defaults = await console.post(
        f"/start/{FORMS}.monthly_report",
        data={"region": "US", "year": "2024", "scale": ""},
        allow_redirects=False,
    )
    record = await tasks.wait_task(await started_task(defaults), timeout=10)
    assert record.result == "US-2024-1.0-False"


async def test_empty_required_fields_are_refused_and_what_was_typed_is_kept(
    console: Client,
) -> None:
    before = await task_count(console)
    response = await console.post(
        f"/start/{FORMS}.monthly_report",
        data={"region": "   ", "year": "", "scale": "3.5", "dry_run": "on"},
        allow_redirects=False,
    )
    assert response.status == 400
    form = await response.text()
    assert "2 fields to mend before" in form and 'role="alert"' in form
    assert '<a href="#f-region">region is required: fill it in</a>' in form
    assert '<a href="#f-year">year is required: fill it in</a>' in form
    region = field(form, "region")
    assert 'aria-invalid="true"' in region and 'aria-describedby="h-region e-region"' in region
    assert 'value="   "' in region and " autofocus" in region  # the first field to mend
    assert " autofocus" not in field(form, "year")
    assert 'value="3.5"' in field(form, "scale")
    assert "checked" in field(form, "dry_run")
    assert await task_count(console) == before


async def test_values_of_the_wrong_type_name_the_field(console: Client) -> None:
    response = await console.post(f"/start/{TASKS}.multiply", data={"a": "five", "b": "2"})
    assert response.status == 400
    form = await response.text()
    assert "a must be a whole number, like 42" in form and 'value="five"' in form
    more = await console.post(f"/start/{TASKS}.count_rows", data={"__more__": "[1, 2]"})
    assert more.status == 400
    assert "other arguments must be a JSON object" in await more.text()
    unknown = await console.post(
        f"/start/{TASKS}.multiply", data={"a": "1", "task_publish_id": "x"}
    )
    assert unknown.status == 400
    assert "has no stream: task_publish_id does not apply" in await unknown.text()
    await text_of(console, "/start/tests.support.never_imported.boom", 404)


async def test_a_publish_id_given_in_the_form_names_the_stream(console: Client) -> None:
    form = await text_of(console, f"/start/{TASKS}.count_rows")
    assert 'name="task_publish_id"' in form and "Leave it empty for a new stream" in form
    response = await console.post(
        f"/start/{TASKS}.count_rows",
        data={"rows": "2", "task_publish_id": "f1", "__more__": '{"extra": 1}'},
        allow_redirects=False,
    )
    record = await tasks.wait_task(await started_task(response), timeout=10)
    assert record.stream_id == "rows__f1" and record.kwargs["extra"] == 1
    greet = await console.post(
        "/start/greet", data={"name": "ann", "shout": "on"}, allow_redirects=False
    )
    assert (await tasks.wait_task(await started_task(greet), timeout=10)).result == "HELLO ANN"


async def test_starts_without_a_publish_id_get_streams_of_their_own(console: Client) -> None:
    slow = {"rows": "50", "delay": "0.2"}
    first = await started_task(
        await console.post(f"/start/{TASKS}.count_rows", data=slow, allow_redirects=False)
    )
    second = await started_task(
        await console.post(f"/start/{TASKS}.count_rows", data=slow, allow_redirects=False)
    )
    body = {"name": f"{TASKS}.count_rows", "arguments": {"rows": 50, "delay": 0.2}}
    third = await console.post("/api/tasks", json=body)
    fourth = await console.post("/api/tasks", json=body)
    assert third.status == 201 and fourth.status == 201, await fourth.text()
    ids = [first, second, (await third.json())["id"], (await fourth.json())["id"]]
    records = [tasks.get_task(task_id) for task_id in ids]
    streams = [record.stream_id or "" for record in records if record is not None]
    assert len(set(streams)) == 4 and all(re.fullmatch(r"rows__[0-9a-f]{12}", s) for s in streams)
    assert all(record is not None and not record.status.is_final for record in records)
    for task_id in ids:
        tasks.cancel(task_id)


async def test_async_task_keeps_pytigon_s_stream_and_its_busy_error(console: Client) -> None:
    first = tasks.async_task(f"{TASKS}.count_rows", rows=50, delay=0.2)
    assert (record := tasks.get_task(first)) is not None and record.stream_id == "rows"
    with pytest.raises(StreamBusyError) as caught:
        tasks.async_task(f"{TASKS}.count_rows", rows=1)
    assert caught.value.stream_id == "rows" and caught.value.task_id == first
    busy = await console.post(
        "/api/tasks",
        json={
            "name": f"{TASKS}.count_rows",
            "arguments": {"rows": 50, "delay": 0.2},
            "task_publish_id": "dup",
        },
    )
    assert busy.status == 201
    again = await console.post(
        "/api/tasks",
        json={"name": f"{TASKS}.count_rows", "arguments": {"rows": 1}, "task_publish_id": "dup"},
    )
    assert again.status == 409 and (await again.json())["error"] == "stream_busy"
    for task_id in (first, (await busy.json())["id"]):
        tasks.cancel(task_id)

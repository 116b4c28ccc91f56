"""The tool's background job: check and import CSV rows in a worker process, row by row."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

from markupsafe import escape

from taskcast.publish import CommunicationBasePublisher, publish


@publish("csv_import")
def import_rows(
    cproxy: CommunicationBasePublisher | None = None,
    text: str = "",
    delay: float = 0.05,
    **kwargs: Any,
) -> dict[str, int]:
    """Check each row of a CSV (name,email) and report it on the page as it goes."""
    rows = list(csv.reader(io.StringIO(text)))
    if cproxy:
        cproxy.send_event("<ol class='data'></ol>")
    imported = rejected = 0
    for number, row in enumerate(rows, 1):
        time.sleep(delay)  # stands in for the real work: a database insert, an API call
        if len(row) == 2 and "@" in row[1]:
            imported += 1
            line = f"<li class='ok'>row {number}: {escape(row[0])} imported</li>"
        else:
            rejected += 1
            line = f"<li class='bad'>row {number}: rejected ({escape(','.join(row))})</li>"
        if cproxy:
            cproxy.send_event(line + "===>>.data")
            cproxy.progress(number, len(rows), "rows")
    return {"imported": imported, "rejected": rejected}

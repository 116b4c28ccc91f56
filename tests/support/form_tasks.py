"""Registered tasks whose docstrings document their parameters, for the start-form tests."""

from __future__ import annotations

from taskcast.publish import CommunicationBasePublisher, publish
from taskcast.registry import register


@register
def monthly_report(region: str, year: int, scale: float = 1.0, dry_run: bool = False) -> str:
    """Build the monthly sales report
    for one region.

    The report is written to the shared folder.

    Args:
        region: Sales region code, such as "EU" or "US".
        year (int): Calendar year to report on;
            earlier years come from the archive.
        scale: Factor applied to every amount.
        dry_run: Only check the inputs.

    Returns:
        The report's path.
    """
    return f"{region}-{year}-{scale}-{dry_run}"


@register
def resize(width: int, label: str = "", height: int | None = None) -> int:
    """Resize the images.

    Parameters
    ----------
    width : int
        Target width in pixels.
    label : str, optional
        Text written under each image.
    height : int, optional
        Target height; None keeps the ratio.
    """
    return width


@publish("reports")
def export(cproxy: CommunicationBasePublisher | None = None, rows: int = 3) -> int:
    """Export rows, streaming each one.

    :param rows: How many rows to export.
    :returns: the count.
    """
    for row in range(rows):
        if cproxy:
            cproxy.send_event(f"<li>row {row}</li>===>>")
    return rows

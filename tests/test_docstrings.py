"""Docstrings read for the start forms: summary, description, and help per parameter in the
Google, numpy and Sphinx styles; text in no style never fails."""

from __future__ import annotations

import pytest

from taskcast.docstrings import Docstring, parse
from taskcast.registry import describe
from tests.support import form_tasks

GOOGLE = """Import a CSV file
    into the ledger.

    Rows that fail validation are skipped and logged.

    Args:
        path (str): Where the file is, relative to the upload folder.
        limit: At most this many rows;
            0 means all of them.
        *args: Ignored.
        **kwargs: Passed to the reader.

    Returns:
        int: how many rows were imported.

    Raises:
        ValueError: the file is not a CSV.
    """

NUMPY = """Resize the images.

    Parameters
    ----------
    width : int
        Target width
        in pixels.
    height, depth : int, optional
        Both limits.
    keep_ratio
        Keep the aspect ratio.

    Returns
    -------
    int
        The count.
    """

SPHINX = """Send the invoice.

    :param customer: Who gets it.
    :param int days: Days until
        it is due.
    :type days: int
    :returns: the invoice number.
    :raises KeyError: unknown customer.
    """


def test_google_style() -> None:
    doc = parse(GOOGLE)
    assert doc.summary == "Import a CSV file into the ledger."
    assert doc.description == "Rows that fail validation are skipped and logged."
    assert doc.params == {
        "path": "Where the file is, relative to the upload folder.",
        "limit": "At most this many rows; 0 means all of them.",
        "args": "Ignored.",
        "kwargs": "Passed to the reader.",
    }


def test_numpy_style() -> None:
    doc = parse(NUMPY)
    assert doc.summary == "Resize the images." and doc.description == ""
    assert doc.params == {
        "width": "Target width in pixels.",
        "height": "Both limits.",
        "depth": "Both limits.",
        "keep_ratio": "Keep the aspect ratio.",
    }


def test_sphinx_style() -> None:
    doc = parse(SPHINX)
    assert doc.summary == "Send the invoice." and doc.description == ""
    assert doc.params == {"customer": "Who gets it.", "days": "Days until it is due."}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, Docstring()),
        ("", Docstring()),
        ("   \n  ", Docstring()),
        ("One line.", Docstring("One line.")),
        ("Args:", Docstring()),
        ("Do it.\n\nArgs:\n    x: the x.", Docstring("Do it.", "", {"x": "the x."})),
        (
            "Do it.\n\nFirst.\n\nSecond:\n  not a section.",
            Docstring("Do it.", "First.\n\nSecond: not a section."),
        ),
        ("Parameters\n----------\n", Docstring()),
        ("Check.\n\nArgs:\n    nonsense without a colon\n", Docstring("Check.")),
        (":param: nameless", Docstring()),
    ],
)
def test_odd_docstrings_give_what_they_can(text: str | None, expected: Docstring) -> None:
    assert parse(text) == expected


def test_the_registry_gives_each_parameter_its_help() -> None:
    task = describe(form_tasks.monthly_report, "report")
    assert task.summary == "Build the monthly sales report for one region."
    assert task.description == "The report is written to the shared folder."
    helps = {parameter.name: parameter.help for parameter in task.parameters}
    assert helps == {
        "region": 'Sales region code, such as "EU" or "US".',
        "year": "Calendar year to report on; earlier years come from the archive.",
        "scale": "Factor applied to every amount.",
        "dry_run": "Only check the inputs.",
    }
    export = describe(form_tasks.export, "export")
    assert [(p.name, p.help) for p in export.parameters] == [("rows", "How many rows to export.")]

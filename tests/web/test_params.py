"""The strict parser: ASCII digits within a range, or a 400 that names the parameter."""

from __future__ import annotations

import pytest

from taskcast.web.params import BadParameter, ascii_value, whole_number

#: look like numbers to `str.isdigit` or `int`, and are not ours to accept
NOT_NUMBERS = [
    "",
    " 1",
    "1 ",
    "+1",
    "-1",
    "1_0",
    "1.0",
    "0x10",
    "\u00b2",
    "\u00b9",
    "\u0661",
    "\uff11\uff12",
    "\u07c1",
    "\ufffd",
    "\ud800",
    "\x00",
    "9" * 25,
    "9" * 5000,
]


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_only_ascii_digits_are_numbers(text: str) -> None:
    with pytest.raises(BadParameter) as refused:
        whole_number(text, "limit", 1, 200)
    assert refused.value.status == 400
    assert refused.value.detail == "limit must be a whole number from 1 to 200"


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("200", 200), ("007", 7)])
def test_numbers_within_the_range_pass(text: str, value: int) -> None:
    assert whole_number(text, "limit", 1, 200) == value


@pytest.mark.parametrize("text", ["0", "201", "99999999999999999999"])
def test_numbers_outside_the_range_are_refused(text: str) -> None:
    with pytest.raises(BadParameter):
        whole_number(text, "limit", 1, 200)


@pytest.mark.parametrize("value", ["é", "\udcff", "a\tb", "a\nb", "\x7f", "\uff11"])
def test_header_values_that_are_not_printable_ascii_count_as_absent(value: str) -> None:
    assert ascii_value(value) is None


def test_printable_ascii_header_values_pass() -> None:
    assert ascii_value("Bearer abc-123 =") == "Bearer abc-123 ="
    assert ascii_value(None) is None

"""An error shown in one line never raises an error of its own."""

import pytest

from etl_platform.errors import first_line


@pytest.mark.parametrize(
    ("err", "shown"),
    [
        (KeyError(), "KeyError"),
        (ValueError(""), "ValueError"),
        (ValueError("\n\n  \n"), "ValueError"),
        (RuntimeError("\n  the reason  \nthe details"), "the reason"),
        (OSError(2, "No such file"), "[Errno 2] No such file"),
    ],
)
def test_the_first_line_of_an_error_or_its_type_when_it_says_nothing(err, shown):
    assert first_line(err) == shown


def test_a_spec_expression_failing_with_an_empty_message_names_its_type():
    from etl_platform.validation.pipeline import _first_line

    assert _first_line(ZeroDivisionError()) == "ZeroDivisionError"

import pytest

from gated_training.errors import ConfigError
from gated_training.kubeflow.schedules import parse_interval, validate_cron


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 2 * * *",
        "0 30 2 * * MON-FRI",
        "0 0 */6 * * *",
        "0 0 2 1,15 * ?",
        "0 0 2 ? JAN-MAR SUN",
        "15 0,30 8-18/2 * * 1-5",
        "@daily",
        "@hourly",
    ],
)
def test_valid_six_field_crons_pass_unchanged(expression):
    assert validate_cron(expression) == expression


def test_extra_whitespace_is_normalised():
    assert validate_cron("  0 0  2 * * *  ") == "0 0 2 * * *"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 2 * * *", "Did you mean '0 0 2 * * *'?"),
        ("0 0 2 * * * 2027", "has 7 fields"),
        ("", "has 0 fields"),
        ("60 0 2 * * *", "second 60 is outside 0-59"),
        ("0 0 2 0 * *", "day of month 0 is outside 1-31"),
        ("0 0 2 * 13 *", "month 13 is outside 1-12"),
        ("0 0 2 * * 7", "day of week 7 is outside 0-6"),
        ("0 0 2 * * FUNDAY", "day of week 'FUNDAY' is not a number or SUN-SAT names"),
        ("0 0 18-8 * * *", "hour range '18-8' runs backwards"),
        ("0 0 */0 * * *", "hour step '0' must be a positive number"),
        ("0 ? 2 * * *", "minute '?' is not a number"),
        ("@every 6h", "use --interval"),
        ("@fortnightly", "unknown descriptor"),
    ],
)
def test_mistakes_are_explained(expression, message):
    with pytest.raises(ConfigError) as caught:
        validate_cron(expression)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600), ("90m", 5400), ("6h", 21600), ("1d", 86400), ("120s", 120)]
)
def test_intervals(text, seconds):
    assert parse_interval(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"), [("6 hours", "expected a number"), ("30s", "at least 60 s"), ("-1h", "expected a number")]
)
def test_bad_intervals(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_interval(text)
    assert message in str(caught.value)

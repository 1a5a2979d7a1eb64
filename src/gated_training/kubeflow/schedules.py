"""Recurring-run triggers, checked before anything is sent: KFP's 6-field cron and intervals.

KFP's scheduled workflows use robfig/cron with a seconds field first:
``second minute hour day-of-month month day-of-week``, e.g. ``0 0 2 * * *`` for 02:00 every day.
A 5-field crontab line is the most common mistake; the error shows the 6-field equivalent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gated_training.errors import ConfigError

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
INTERVAL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
INTERVAL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, kw_only=True)
class CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0
    question_mark: bool = False


FIELDS = (
    CronField(name="second", low=0, high=59),
    CronField(name="minute", low=0, high=59),
    CronField(name="hour", low=0, high=23),
    CronField(name="day of month", low=1, high=31, question_mark=True),
    CronField(name="month", low=1, high=12, names=tuple(MONTHS), names_start=1),
    CronField(name="day of week", low=0, high=6, names=tuple(DAYS), names_start=0, question_mark=True),
)


def _value(field: CronField, text: str, expression: str) -> int:
    if text.upper() in field.names:
        return field.names.index(text.upper()) + field.names_start
    if not text.isdigit():
        allowed = f" or {field.names[0]}-{field.names[-1]} names" if field.names else ""
        raise ConfigError(f"cron {expression!r}: {field.name} {text!r} is not a number{allowed}")
    number = int(text)
    if not field.low <= number <= field.high:
        raise ConfigError(f"cron {expression!r}: {field.name} {number} is outside {field.low}-{field.high}")
    return number


def _check_field(field: CronField, text: str, expression: str) -> None:
    if text == "?" and field.question_mark:
        return
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ConfigError(f"cron {expression!r}: {field.name} step {step!r} must be a positive number")
        if base == "*":
            continue
        low, dash, high = base.partition("-")
        start = _value(field, low, expression)
        if dash and start > _value(field, high, expression):
            raise ConfigError(f"cron {expression!r}: {field.name} range {base!r} runs backwards")


def validate_cron(expression: str) -> str:
    """Return the expression, normalised to single spaces, or raise ConfigError explaining the mistake."""
    fields = expression.split()
    if fields and fields[0].startswith("@"):
        if fields[0] == "@every":
            raise ConfigError(f"cron {expression!r}: use --interval for a fixed period (e.g. --interval 6h)")
        if fields[0] in DESCRIPTORS and len(fields) == 1:
            return fields[0]
        raise ConfigError(f"cron {expression!r}: unknown descriptor; known: {', '.join(sorted(DESCRIPTORS))}")
    if len(fields) == 5:
        raise ConfigError(
            f"cron {expression!r} has 5 fields; KFP's cron has 6, with seconds first "
            f"(second minute hour day-of-month month day-of-week). Did you mean '0 {' '.join(fields)}'?"
        )
    if len(fields) != 6:
        raise ConfigError(
            f"cron {expression!r} has {len(fields)} fields; KFP's cron has 6: "
            "second minute hour day-of-month month day-of-week, e.g. '0 0 2 * * *' for 02:00 daily"
        )
    for field, text in zip(FIELDS, fields):
        _check_field(field, text, expression)
    return " ".join(fields)


def parse_interval(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``6h`` or ``1d`` → seconds."""
    match = INTERVAL.match(text)
    if not match:
        raise ConfigError(f"interval {text!r}: expected a number of seconds or a number with s, m, h or d (e.g. 6h)")
    seconds = int(match.group(1)) * INTERVAL_UNITS[match.group(2)]
    if seconds < 60:
        raise ConfigError(f"interval {text!r}: must be at least 60 s; a pipeline run takes longer than that")
    return seconds

"""Markdown as the Kubeflow Pipelines UI renders it: markdown-to-jsx 7.7 with raw HTML off
(``MarkdownViewer``), which italicises ``min_roc_auc`` and joins consecutive lines.

So: identifiers go in code spans, checks go in tables, numbers have 4 significant digits,
nothing is printed as a Python repr and nothing as "None", and every line that must stand alone
is its own paragraph or list item. Text from the data is escaped (``escaping.markdown_text``);
in a code span only its backtick fence and table pipes need care.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

from gated_training.reports.escaping import markdown_text

_BACKTICKS = re.compile(r"`+")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def code(name: object, in_table: bool = True) -> str:
    """``name`` as a code span: a fence longer than any backtick run inside it, pipes escaped for
    tables (GFM reads ``\\|`` as a pipe inside a cell's code span too)."""
    text = _LINE_BREAKS.sub(" ", str(name))
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") or not text.strip() else text
    if in_table:
        padded = padded.replace("|", "\\|")
    return f"{fence}{padded}{fence}"


def number(value: float | int) -> str:
    """4 significant digits; integers as they are; non-finite values spelled out."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "not a number"
    if math.isinf(value):
        return "infinite" if value > 0 else "minus infinite"
    return f"{value:.4g}"


def number_or_dash(item: Any) -> str:
    """A number for plain text (CLI lines, details): 4 significant digits, ``—`` when there is none.
    Anything that is not a number (a stray string from an old record) is shown as it is, never formatted."""
    if item is None:
        return "—"
    if isinstance(item, (bool, int, float)):
        return number(item)
    return str(item)


def percent(item: Any) -> str:
    """A share as a whole percentage (``0.25`` → ``25%``), ``—`` when there is none."""
    if isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item):
        return f"{item:.0%}"
    return "—"


def value(item: Any, limit: int = 120) -> str:
    """Any recorded value as escaped Markdown text: numbers rounded, lists and mappings spelled
    out, missing values as a dash; never a Python repr."""
    if item is None:
        return "—"
    if isinstance(item, (bool, int, float)):
        return number(item)
    if isinstance(item, dict):
        text = ", ".join(f"{key} {_plain(part)}" for key, part in item.items())
    elif isinstance(item, (list, tuple, set)):
        text = ", ".join(_plain(part) for part in item)
    else:
        text = str(item)
    if len(text) > limit:
        text = text[:limit] + "…"
    return markdown_text(text)


def _plain(item: Any) -> str:
    if item is None:
        return "—"
    if isinstance(item, (bool, int, float)):
        return number(item)
    if isinstance(item, dict):
        return "{" + ", ".join(f"{key} {_plain(part)}" for key, part in item.items()) + "}"
    if isinstance(item, (list, tuple, set)):
        return "[" + ", ".join(_plain(part) for part in item) + "]"
    return str(item)


def verdict(passed: bool, severity: str = "critical") -> str:
    """pass, **FAIL** (a critical check), or warn (a warning-level check that failed and blocked nothing)."""
    if passed:
        return "pass"
    return "**FAIL**" if severity == "critical" else "warn"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GFM table whose cells are already Markdown (escaped or code spans)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]

"""Suites are data, never code: the expectation types and arguments a suite may use.

Great Expectations hands a string ``row_condition`` with ``condition_parser: "pandas"`` (or
``"python"``), and any ``{"type": "pass_through", ...}`` condition, to ``DataFrame.query()``,
which resolves ``@name`` from the caller's scope: a suite could run shell commands inside
validate-data, the step that holds the bucket's credentials. So a suite is checked here before
GX sees it, against an allowlist:

- the expectation ``type`` is one of :data:`ALLOWED_EXPECTATIONS`;
- every argument is one that type takes (:data:`COMMON_ARGUMENTS` plus its own), holding plain
  JSON data (no ``{"$PARAMETER": ...}`` references to evaluate);
- a row condition is either GX's structured form (``comparison``, ``nullity``, ``and``, ``or``)
  or a string under ``condition_parser: "great_expectations"`` (``col("age") > 18``), which
  GX parses with a grammar and never evaluates. Column names in conditions carry no backtick,
  ``@`` or control character, and parameters are finite numbers, strings or booleans, so the
  query text GX renders from them is literals and quoted names only.

After GX has built its objects, :func:`check_built_condition` checks the condition tree once
more, so a form GX might add later cannot slip through the document check.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gated_training.errors import SuiteError

# Arguments every expectation may carry; GX adds batch_id itself.
COMMON_ARGUMENTS = frozenset({"result_format", "catch_exceptions", "include_config", "batch_id"})
CONDITION_ARGUMENTS = frozenset({"row_condition", "condition_parser"})
COLUMN_MAP = frozenset({"column", "mostly"}) | CONDITION_ARGUMENTS
RANGE = frozenset({"min_value", "max_value", "strict_min", "strict_max"})

ALLOWED_EXPECTATIONS: dict[str, frozenset[str]] = {
    # table
    "expect_table_row_count_to_be_between": frozenset({"min_value", "max_value", "strict_min", "strict_max"})
    | CONDITION_ARGUMENTS,
    "expect_table_row_count_to_equal": frozenset({"value"}) | CONDITION_ARGUMENTS,
    "expect_table_column_count_to_be_between": frozenset({"min_value", "max_value", "strict_min", "strict_max"}),
    "expect_table_column_count_to_equal": frozenset({"value"}),
    "expect_table_columns_to_match_set": frozenset({"column_set", "exact_match"}),
    "expect_table_columns_to_match_ordered_list": frozenset({"column_list"}),
    "expect_column_to_exist": frozenset({"column", "column_index"}),
    # column values
    "expect_column_values_to_not_be_null": COLUMN_MAP,
    "expect_column_values_to_be_null": COLUMN_MAP,
    "expect_column_values_to_be_in_set": COLUMN_MAP | {"value_set"},
    "expect_column_values_to_not_be_in_set": COLUMN_MAP | {"value_set"},
    "expect_column_values_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_values_to_be_unique": COLUMN_MAP,
    "expect_column_values_to_be_in_type_list": COLUMN_MAP | {"type_list"},
    "expect_column_values_to_be_of_type": COLUMN_MAP | {"type_"},
    "expect_column_values_to_match_regex": COLUMN_MAP | {"regex"},
    "expect_column_values_to_not_match_regex": COLUMN_MAP | {"regex"},
    "expect_column_value_lengths_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_value_lengths_to_equal": COLUMN_MAP | {"value"},
    # column aggregates
    "expect_column_min_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_max_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_mean_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_median_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_stdev_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_sum_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_unique_value_count_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_proportion_of_unique_values_to_be_between": COLUMN_MAP | RANGE,
    "expect_column_distinct_values_to_be_in_set": COLUMN_MAP | {"value_set"},
    "expect_column_distinct_values_to_contain_set": COLUMN_MAP | {"value_set"},
    "expect_column_distinct_values_to_equal_set": COLUMN_MAP | {"value_set"},
    "expect_column_most_common_value_to_be_in_set": COLUMN_MAP | {"value_set", "ties_okay"},
    # several columns
    "expect_column_pair_values_to_be_equal": frozenset({"column_A", "column_B", "ignore_row_if", "mostly"})
    | CONDITION_ARGUMENTS,
    "expect_column_pair_values_a_to_be_greater_than_b": frozenset(
        {"column_A", "column_B", "or_equal", "ignore_row_if", "mostly"}
    )
    | CONDITION_ARGUMENTS,
    "expect_compound_columns_to_be_unique": frozenset({"column_list", "ignore_row_if", "mostly"}) | CONDITION_ARGUMENTS,
    "expect_select_column_values_to_be_unique_within_record": frozenset({"column_list", "ignore_row_if", "mostly"})
    | CONDITION_ARGUMENTS,
}

SAFE_PARSERS = ("great_expectations",)
CONDITION_TYPES = ("comparison", "nullity", "and", "or")
UNSAFE_NAME = re.compile(r"[`@\x00-\x1f\x7f]")
MAX_REGEX_CHARS = 500
MAX_NESTING = 8


def _where(suite_uri: str, index: int, kind: str) -> str:
    return f"{suite_uri}: expectations[{index}] ({kind})"


def _plain_data(value: Any, where: str, path: str, depth: int = 0) -> None:
    """JSON scalars, lists and objects only; never an evaluation-parameter reference."""
    if depth > MAX_NESTING:
        raise SuiteError(f"{where}: argument {path} is nested too deeply")
    if isinstance(value, dict):
        if any(str(key).startswith("$") for key in value):
            raise SuiteError(
                f'{where}: argument {path} is a {{"$PARAMETER": ...}} reference; suites here hold '
                "literal values only (nothing in a suite is evaluated)"
            )
        for key, item in value.items():
            _plain_data(item, where, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            _plain_data(item, where, f"{path}[{position}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise SuiteError(f"{where}: argument {path} is {value}, not a finite number")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise SuiteError(f"{where}: argument {path} holds a {type(value).__name__}, not JSON data")


def _check_column_name(name: Any, where: str) -> None:
    if not isinstance(name, str) or not name or len(name) > 256 or UNSAFE_NAME.search(name):
        raise SuiteError(
            f"{where}: row_condition names column {name!r}; a column in a condition must be a "
            "non-empty name without backticks, '@' or control characters"
        )


def _check_parameter(value: Any, where: str) -> None:
    if isinstance(value, list):
        for item in value:
            _check_parameter(item, where)
        return
    if isinstance(value, bool) or isinstance(value, str) or (isinstance(value, int)):
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    raise SuiteError(f"{where}: row_condition parameter {value!r} must be a finite number, a string or a boolean")


def _check_condition_document(condition: Any, where: str, depth: int = 0) -> None:
    if depth > MAX_NESTING:
        raise SuiteError(f"{where}: row_condition is nested too deeply")
    if not isinstance(condition, dict):
        raise SuiteError(f"{where}: row_condition parts must be objects, not {type(condition).__name__}")
    kind = condition.get("type")
    if kind == "pass_through":
        raise SuiteError(
            f"{where}: row_condition of type 'pass_through' is refused: GX hands its text to "
            "DataFrame.query(), which can run code. Use a structured condition (comparison, nullity, "
            "and, or) or condition_parser 'great_expectations' with col(\"name\") syntax"
        )
    if kind not in CONDITION_TYPES:
        raise SuiteError(f"{where}: row_condition type {kind!r} is not one of {', '.join(CONDITION_TYPES)}")
    if kind in ("and", "or"):
        parts = condition.get("conditions")
        if not isinstance(parts, list) or not parts:
            raise SuiteError(f"{where}: row_condition '{kind}' needs a non-empty 'conditions' list")
        for part in parts:
            _check_condition_document(part, where, depth + 1)
        return
    column = condition.get("column")
    _check_column_name(column.get("name") if isinstance(column, dict) else column, where)
    if kind == "comparison":
        _check_parameter(condition.get("parameter"), where)


def _check_row_condition(kwargs: dict[str, Any], where: str) -> None:
    condition = kwargs.get("row_condition")
    parser = kwargs.get("condition_parser")
    if condition is None or condition == "":
        if parser not in (None, "", *SAFE_PARSERS):
            raise SuiteError(
                f"{where}: condition_parser {parser!r} is refused (only 'great_expectations' parses without evaluating)"
            )
        return
    if isinstance(condition, str):
        if parser not in SAFE_PARSERS:
            raise SuiteError(
                f"{where}: a string row_condition with condition_parser {parser!r} is refused: GX hands "
                "it to DataFrame.query(), which can run code. Use condition_parser 'great_expectations' "
                '(col("name") > 1) or a structured condition'
            )
        if UNSAFE_NAME.search(condition):
            raise SuiteError(f"{where}: row_condition contains a backtick, '@' or a control character")
        return
    if parser not in (None, "", *SAFE_PARSERS):
        raise SuiteError(
            f"{where}: condition_parser {parser!r} is refused (only 'great_expectations' parses without evaluating)"
        )
    _check_condition_document(condition, where)


def check_expectation_document(spec: dict[str, Any], index: int, suite_uri: str) -> None:
    """Refuse anything outside the allowlist, naming the suite, the expectation and the argument."""
    kind = spec["type"]
    where = _where(suite_uri, index, kind)
    allowed = ALLOWED_EXPECTATIONS.get(kind)
    if allowed is None:
        raise SuiteError(
            f"{where}: expectation type {kind!r} is not supported here (supported: "
            f"{', '.join(sorted(ALLOWED_EXPECTATIONS))})"
        )
    kwargs = spec.get("kwargs", {})
    unknown = sorted(set(kwargs) - allowed - COMMON_ARGUMENTS)
    if unknown:
        raise SuiteError(
            f"{where}: argument(s) {', '.join(unknown)} are not taken by {kind} (it takes {', '.join(sorted(allowed))})"
        )
    for name, value in kwargs.items():
        if name == "row_condition" and isinstance(value, dict):
            continue  # checked structurally below
        _plain_data(value, where, name)
    regex = kwargs.get("regex")
    if regex is not None and (not isinstance(regex, str) or len(regex) > MAX_REGEX_CHARS):
        raise SuiteError(f"{where}: regex must be a string of at most {MAX_REGEX_CHARS} characters")
    _check_row_condition(kwargs, where)
    _plain_data(spec.get("meta") or {}, where, "meta")


def check_built_condition(expectation: Any, index: int, suite_uri: str) -> None:
    """The same rule on the condition object GX built, whatever form the document used."""
    from great_expectations.expectations.row_conditions import (
        AndCondition,
        ComparisonCondition,
        NullityCondition,
        OrCondition,
    )

    where = _where(suite_uri, index, expectation.expectation_type)

    def visit(condition: Any, depth: int) -> None:
        if depth > MAX_NESTING:
            raise SuiteError(f"{where}: row_condition is nested too deeply")
        if isinstance(condition, (AndCondition, OrCondition)):
            for part in condition.conditions:
                visit(part, depth + 1)
        elif isinstance(condition, ComparisonCondition):
            _check_column_name(condition.column.name, where)
            _check_parameter(condition.parameter, where)
        elif isinstance(condition, NullityCondition):
            _check_column_name(condition.column.name, where)
        else:
            raise SuiteError(
                f"{where}: row_condition {type(condition).__name__} is refused: only comparison, "
                "nullity, and, or conditions are evaluated without code"
            )

    condition = getattr(expectation, "row_condition", None)
    if condition is None or condition == "":
        return
    if isinstance(condition, str):
        raise SuiteError(f"{where}: a string row_condition reached GX unparsed; refused")
    visit(condition, 0)

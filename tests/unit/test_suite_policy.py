"""Suites are data, never code: payloads that would run a command are refused before GX sees them,
naming the suite, the expectation and the argument; safe condition forms still work."""

import copy
import json

import pytest

from gated_training.errors import ConfigError, SuiteError
from gated_training.steps.validate_data import validate_data
from gated_training.validation.suite import read_suite_document
from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE


def payload(marker) -> str:
    return f"__import__('os').system('touch {marker}')"


def hostile_conditions(marker):
    """Each would run ``touch marker`` inside DataFrame.query() if GX evaluated it."""
    command = f"@pd.io.common.os.system('touch {marker}')"
    return {
        "pandas_parser": {"row_condition": f"age >= {command}", "condition_parser": "pandas"},
        "python_parser": {"row_condition": f"age >= {command}", "condition_parser": "python"},
        "no_parser": {"row_condition": f"age >= {command}"},
        "spark_parser": {"row_condition": f"age >= {command}", "condition_parser": "spark"},
        "pass_through": {"row_condition": {"type": "pass_through", "pass_through_filter": f"age >= {command}"}},
        "nested_pass_through": {
            "row_condition": {
                "type": "and",
                "conditions": [
                    {"type": "nullity", "column": {"name": "age"}, "is_null": False},
                    {"type": "pass_through", "pass_through_filter": f"age >= {command}"},
                ],
            }
        },
        "backtick_column": {
            "row_condition": {
                "type": "comparison",
                "column": {"name": f"age` >= {command} #"},
                "operator": ">",
                "parameter": 1,
            }
        },
        "ge_parser_with_at": {
            "row_condition": f'col("age") > 1 or {command}',
            "condition_parser": "great_expectations",
        },
        "parameter_reference": {"min_value": {"$PARAMETER": payload(marker)}},
    }


CASES = list(hostile_conditions("m"))


def suite_with(kwargs: dict) -> dict:
    document = json.loads(SAMPLE_SUITE.read_text())
    base = {"column": "age", "min_value": 0, "max_value": 200}
    document["expectations"].append(
        {"type": "expect_column_values_to_be_between", "kwargs": {**base, **kwargs}, "severity": "critical"}
    )
    return document


@pytest.mark.parametrize("case", CASES)
def test_a_suite_that_would_run_code_is_refused_and_nothing_runs(tmp_path, case):
    marker = tmp_path / "pwned"
    document = suite_with(hostile_conditions(marker)[case])
    suite = tmp_path / "batch.expectations.json"
    suite.write_text(json.dumps(document))
    index = len(document["expectations"]) - 1
    with pytest.raises(SuiteError) as error:
        validate_data(
            data_uri=str(SAMPLE_DATA),
            suite_uri=str(suite),
            target="risk",
            min_quality_score=0.8,
            dataset_out=str(tmp_path / "d.parquet"),
            report_out=str(tmp_path / "r.json"),
            data_docs_out=str(tmp_path / "docs.html"),
        )
    message = str(error.value)
    assert message.startswith(f"{suite}: expectations[{index}] (expect_column_values_to_be_between)"), message
    assert not marker.exists()
    assert not (tmp_path / "d.parquet").exists()  # nothing written: the run fails before validating


def test_safe_condition_forms_still_filter_rows(tmp_path):
    """GX's own grammar (parsed, never evaluated) and the structured form are accepted and applied."""
    for condition in (
        {"row_condition": 'col("sex") == "male"', "condition_parser": "great_expectations"},
        {"row_condition": {"type": "comparison", "column": {"name": "sex"}, "operator": "==", "parameter": "male"}},
    ):
        document = suite_with({**condition, "min_value": 19, "max_value": 75})
        suite = tmp_path / "s.json"
        suite.write_text(json.dumps(document))
        outcome = validate_data(
            data_uri=str(SAMPLE_DATA),
            suite_uri=str(suite),
            target="risk",
            min_quality_score=0.8,
            dataset_out=str(tmp_path / "d.parquet"),
            report_out=str(tmp_path / "r.json"),
            data_docs_out=str(tmp_path / "docs.html"),
        )
        assert outcome.passed, outcome.blocking_reasons


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"type": "expect_column_values_to_match_json_schema", "kwargs": {"column": "age", "json_schema": {}}},
            "expectation type 'expect_column_values_to_match_json_schema' is not supported here",
        ),
        (
            {"type": "unexpected_rows_expectation", "kwargs": {"unexpected_rows_query": "SELECT 1"}},
            "expectation type 'unexpected_rows_expectation' is not supported here",
        ),
        (
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": 0, "eval": "x"}},
            "argument(s) eval are not taken by expect_column_values_to_be_between",
        ),
        (
            {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "sex", "regex": "a" * 600}},
            "regex must be a string of at most 500 characters",
        ),
        (
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_value": float("nan")}},
            "argument min_value is nan, not a finite number",
        ),
    ],
)
def test_outside_the_allowlist_is_refused_by_name(tmp_path, change, message):
    document = json.loads(SAMPLE_SUITE.read_text())
    document["expectations"].append(copy.deepcopy(change))
    suite = tmp_path / "s.json"
    suite.write_text(json.dumps(document))
    with pytest.raises(SuiteError, match=__import__("re").escape(message)):
        read_suite_document(str(suite))


def test_a_pinned_suite_with_another_digest_blocks_without_running(tmp_path):
    from gated_training.data.tables import sha256_hex

    pinned = sha256_hex(SAMPLE_SUITE.read_bytes())
    ok = validate_data(
        data_uri=str(SAMPLE_DATA),
        suite_uri=str(SAMPLE_SUITE),
        target="risk",
        min_quality_score=0.8,
        dataset_out=str(tmp_path / "d.parquet"),
        report_out=str(tmp_path / "r.json"),
        data_docs_out=str(tmp_path / "docs.html"),
        pinned_suite_sha256=pinned,
    )
    assert ok.passed and ok.suite_sha256 == pinned
    edited = tmp_path / "edited.expectations.json"
    document = json.loads(SAMPLE_SUITE.read_text())
    document["expectations"] = document["expectations"][:3]  # a loosened suite
    edited.write_text(json.dumps(document))
    outcome = validate_data(
        data_uri=str(SAMPLE_DATA),
        suite_uri=str(edited),
        target="risk",
        min_quality_score=0.8,
        dataset_out=str(tmp_path / "d.parquet"),
        report_out=str(tmp_path / "r.json"),
        data_docs_out=str(tmp_path / "docs.html"),
        pinned_suite_sha256=pinned,
    )
    assert not outcome.passed
    assert outcome.blocking_reasons[0] == (
        f"critical rule builtin:suite_pinned failed: observed suite SHA-256 "
        f"{sha256_hex(edited.read_bytes())}, pinned {pinned}"
    )
    assert all(c.rule.startswith("builtin:") for c in outcome.checks)  # the unpinned suite never ran
    with pytest.raises(ConfigError, match="parameter suite_sha256='abc': must be empty or a SHA-256"):
        validate_data(
            data_uri=str(SAMPLE_DATA),
            suite_uri=str(edited),
            target="risk",
            min_quality_score=0.8,
            dataset_out=str(tmp_path / "d.parquet"),
            report_out=str(tmp_path / "r.json"),
            data_docs_out=str(tmp_path / "docs.html"),
            pinned_suite_sha256="abc",
        )


@pytest.mark.parametrize(
    ("excluded", "message"),
    [
        ("customer_id", "meta.excluded_features must be a list of column names"),
        (["risk"], "meta.excluded_features lists the target column 'risk'"),
    ],
)
def test_excluded_features_are_checked_and_name_the_suite(tmp_path, excluded, message):
    document = json.loads(SAMPLE_SUITE.read_text())
    document["meta"] = {"excluded_features": excluded}
    suite = tmp_path / "s.json"
    suite.write_text(json.dumps(document))
    with pytest.raises(SuiteError, match=f"{suite}: " + __import__("re").escape(message)):
        validate_data(
            data_uri=str(SAMPLE_DATA),
            suite_uri=str(suite),
            target="risk",
            min_quality_score=0.8,
            dataset_out=str(tmp_path / "d.parquet"),
            report_out=str(tmp_path / "r.json"),
            data_docs_out=str(tmp_path / "docs.html"),
        )


def test_excluded_features_never_reach_later_steps(tmp_path):
    import pandas as pd

    document = json.loads(SAMPLE_SUITE.read_text())
    document["meta"] = {"excluded_features": ["job", "not_a_column"]}
    suite = tmp_path / "s.json"
    suite.write_text(json.dumps(document))
    outcome = validate_data(
        data_uri=str(SAMPLE_DATA),
        suite_uri=str(suite),
        target="risk",
        min_quality_score=0.8,
        dataset_out=str(tmp_path / "d.parquet"),
        report_out=str(tmp_path / "r.json"),
        data_docs_out=str(tmp_path / "docs.html"),
    )
    assert outcome.passed and outcome.excluded_columns == ["job"]
    assert "job" not in pd.read_parquet(tmp_path / "d.parquet").columns

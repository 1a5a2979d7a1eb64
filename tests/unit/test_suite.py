import json

import pytest

from gated_training.errors import DataError, SuiteError
from gated_training.validation.suite import (
    build_gx_suite,
    default_suite_uri,
    draft_suite,
    read_suite_document,
    resolve_suite_uri,
)
from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE, write_suite


def test_suite_lives_beside_the_data():
    assert default_suite_uri("data/german_credit.csv") == "data/german_credit.expectations.json"
    assert default_suite_uri("gs://bucket/in/batch.parquet") == "gs://bucket/in/batch.expectations.json"
    assert resolve_suite_uri(str(SAMPLE_DATA), "") == str(SAMPLE_SUITE)
    assert resolve_suite_uri(str(SAMPLE_DATA), "custom.json") == "custom.json"


def test_data_without_a_suite_gets_a_clear_error(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_text("a,label\n1,0\n")
    with pytest.raises(
        SuiteError, match=r"no expectation suite for .*orders\.csv: expected .*orders\.expectations\.json.*suite init"
    ):
        resolve_suite_uri(str(data), "")


def test_sample_suite_covers_the_required_rules():
    document = read_suite_document(str(SAMPLE_SUITE))
    kinds = {e["type"] for e in document["expectations"]}
    assert {
        "expect_table_row_count_to_be_between",
        "expect_column_to_exist",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
    } <= kinds
    row_count = next(e for e in document["expectations"] if e["type"] == "expect_table_row_count_to_be_between")
    assert row_count["kwargs"] == {"min_value": 1000, "max_value": 1000000}
    assert {e.get("severity") for e in document["expectations"]} == {"critical", "warning"}
    assert len(build_gx_suite(document, str(SAMPLE_SUITE)).expectations) == len(document["expectations"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"not valid JSON at line 1 column 2"),
        ("[]", "expected a JSON object with an 'expectations' list"),
        ('{"expectations": []}', "the suite has no expectations"),
        ('{"expectations": [{"kwargs": {}}]}', r"expectations\[0\]: each expectation needs a 'type'"),
        (
            '{"expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "a"}, "severity": "fatal"}]}',
            r"expectations\[0\] \(expect_column_to_exist\): severity 'fatal' is not one of",
        ),
    ],
)
def test_malformed_suites_name_file_and_place(tmp_path, content, message):
    path = tmp_path / "bad.expectations.json"
    path.write_text(content)
    with pytest.raises(SuiteError, match=message) as error:
        read_suite_document(str(path))
    assert str(path) in str(error.value)


def test_gx_rejections_name_the_expectation(tmp_path):
    document = {
        "expectations": [
            {"type": "expect_column_to_exist", "kwargs": {"column": "a"}},
            {"type": "expect_column_values_to_be_between", "kwargs": {"min_value": 0}},
        ]
    }
    path = write_suite(document, tmp_path / "s.json")
    with pytest.raises(
        SuiteError, match=r"expectations\[1\] \(expect_column_values_to_be_between\) is invalid: .*column"
    ):
        build_gx_suite(read_suite_document(path), path)
    document["expectations"][1] = {"type": "expect_column_values_to_be_between", "kwargs": {"colum": "a"}}
    path = write_suite(document, tmp_path / "s1.json")
    with pytest.raises(
        SuiteError,
        match=r"expectations\[1\] \(expect_column_values_to_be_between\): argument\(s\) "
        r"colum are not taken by expect_column_values_to_be_between",
    ):
        read_suite_document(path)
    document["expectations"][1] = {"type": "expect_nonsense", "kwargs": {}}
    path = write_suite(document, tmp_path / "s2.json")
    with pytest.raises(
        SuiteError,
        match=r"expectations\[1\] \(expect_nonsense\): expectation type 'expect_nonsense' "
        r"is not supported here",
    ):
        read_suite_document(path)


def test_missing_suite_file_is_a_suite_error(tmp_path):
    with pytest.raises(SuiteError, match=r"expectation suite .*missing\.json: no such file"):
        read_suite_document(str(tmp_path / "missing.json"))


def test_draft_suite_from_reference_data(sample_frame):
    document = draft_suite(sample_frame, "risk", "german")
    json.dumps(document)  # serialisable as written to disk
    by_rule_and_column = {(e["type"], e["kwargs"].get("column")): e for e in document["expectations"]}
    assert by_rule_and_column[("expect_column_values_to_be_in_set", "risk")]["kwargs"]["value_set"] == [0, 1]
    assert by_rule_and_column[("expect_column_values_to_be_in_set", "risk")]["severity"] == "critical"
    assert by_rule_and_column[("expect_column_values_to_not_be_null", "saving_accounts")]["severity"] == "warning"
    assert by_rule_and_column[("expect_column_values_to_be_in_set", "housing")]["kwargs"]["value_set"] == [
        "free",
        "own",
        "rent",
    ]
    age_range = by_rule_and_column[("expect_column_values_to_be_between", "age")]["kwargs"]
    assert age_range["min_value"] < 19 and age_range["max_value"] > 75
    row_count = by_rule_and_column[("expect_table_row_count_to_be_between", None)]["kwargs"]
    assert row_count == {"min_value": 500, "max_value": 100000}


def test_draft_suite_makes_the_schema_ranges_and_sets_critical_with_tolerance(sample_frame):
    document = draft_suite(sample_frame, "risk", "german")
    rules = {(e["type"], e["kwargs"].get("column")): e for e in document["expectations"]}
    columns = rules[("expect_table_columns_to_match_set", None)]
    assert columns["severity"] == "critical" and columns["kwargs"] == {
        "column_set": list(sample_frame.columns),
        "exact_match": True,
    }
    for key in (("expect_column_values_to_be_between", "age"), ("expect_column_values_to_be_in_set", "housing")):
        assert rules[key]["severity"] == "critical" and rules[key]["kwargs"]["mostly"] == 0.95
    assert "excluded_features" not in document["meta"]


def test_draft_suite_keeps_id_like_columns_out_of_the_features(sample_frame):
    frame = sample_frame.assign(
        application_id=[f"A-{i:05d}" for i in range(len(sample_frame))],
        customer_no=range(100_000, 100_000 + len(sample_frame)),
        notes=[f"free text {i}" for i in range(len(sample_frame))],
    )
    document = draft_suite(frame, "risk", "german")
    assert document["meta"]["excluded_features"] == ["application_id", "customer_no", "notes"]
    assert not any(e["kwargs"].get("column") in document["meta"]["excluded_features"] for e in document["expectations"])
    assert "application_id" in document["expectations"][1]["kwargs"]["column_set"]  # still part of the schema


@pytest.mark.parametrize("labels", [["0", "0.0", "1", "yes"], [0, 1, "yes"], ["yes", "Yes", "no"], ["1", 1.0, "0"]])
def test_draft_suite_refuses_one_class_spelled_two_ways(sample_frame, labels):
    frame = sample_frame.assign(risk=[labels[i % len(labels)] for i in range(len(sample_frame))])
    with pytest.raises(DataError, match=r"target column 'risk' mixes label spellings"):
        draft_suite(frame, "risk", "german")


def test_a_drafted_suite_blocks_gross_corruption_and_passes_a_fresh_sample(tmp_path, sample_frame):
    from gated_training.steps.validate_data import validate_data

    suite = tmp_path / "s.json"
    suite.write_text(json.dumps(draft_suite(sample_frame, "risk", "german")))

    def verdict(frame):
        data = tmp_path / "batch.csv"
        frame.to_csv(data, index=False)
        return validate_data(
            data_uri=str(data),
            suite_uri=str(suite),
            target="risk",
            min_quality_score=0.8,
            dataset_out=str(tmp_path / "d.parquet"),
            report_out=str(tmp_path / "r.json"),
            data_docs_out=str(tmp_path / "d.html"),
        )

    assert verdict(sample_frame.sample(frac=0.9, random_state=4)).passed
    scaled = sample_frame.assign(credit_amount=sample_frame["credit_amount"] * 100)  # cents, not euros
    outcome = verdict(scaled)
    assert not outcome.passed and any(
        "expect_column_values_to_be_between on column 'credit_amount'" in r for r in outcome.blocking_reasons
    )
    extra = sample_frame.assign(label_copy=sample_frame["risk"])
    assert any("expect_table_columns_to_match_set" in r for r in verdict(extra).blocking_reasons)

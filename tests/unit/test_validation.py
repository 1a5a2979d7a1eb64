import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gated_training.data.tables import sha256_hex
from gated_training.errors import DataError, SuiteError
from gated_training.steps.validate_data import validate_data
from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE, write_csv, write_suite


def run_validation(tmp_path: Path, data: str, suite: str = "", target: str = "risk", min_quality: float = 0.8):
    outputs = [str(tmp_path / name) for name in ("dataset.parquet", "report.json", "docs.html")]
    dataset, report, docs = outputs
    return validate_data(
        data_uri=data,
        suite_uri=suite,
        target=target,
        min_quality_score=min_quality,
        dataset_out=dataset,
        report_out=report,
        data_docs_out=docs,
    ), outputs


def rules_failed(outcome) -> set[tuple[str, str | None]]:
    return {(c.rule, c.column) for c in outcome.checks if not c.passed}


def test_sample_passes_and_writes_every_output(tmp_path):
    outcome, (dataset, report, docs) = run_validation(tmp_path, str(SAMPLE_DATA))
    assert outcome.passed and outcome.quality_score == 1.0 and outcome.blocking_reasons == []
    assert pd.read_parquet(dataset).shape == (1000, 10)
    written = json.loads(Path(report).read_text())
    assert written["suite_uri"] == str(SAMPLE_SUITE)
    assert len(written["checks"]) == len(outcome.checks) > 40
    row_count = next(c for c in written["checks"] if c["rule"] == "expect_table_row_count_to_be_between")
    assert row_count["observed"] == 1000
    html = Path(docs).read_text()
    assert "Data gate: PASSED" in html
    assert written["suite_sha256"] == sha256_hex(SAMPLE_SUITE.read_bytes())
    assert html.index("Data gate: PASSED") < html.index("expect_table_row_count_to_be_between")  # verdict first


def test_critical_failure_blocks_and_names_column_and_rule(tmp_path, sample_frame):
    sample_frame.loc[:9, "age"] = -5  # the suite allows 19..75 minus slack, as a warning
    sample_frame.loc[:4, "housing"] = "castle"
    data = write_csv(sample_frame, tmp_path / "batch.csv")
    suite = json.loads(SAMPLE_SUITE.read_text())
    for expectation in suite["expectations"]:
        if expectation["kwargs"].get("column") == "age" and expectation["type"] == "expect_column_values_to_be_between":
            expectation["severity"] = "critical"
    outcome, (_, report, docs) = run_validation(tmp_path, data, write_suite(suite, tmp_path / "suite.json"))
    assert not outcome.passed
    assert ("expect_column_values_to_be_between", "age") in rules_failed(outcome)
    assert any(
        "age" in reason and "expect_column_values_to_be_between" in reason for reason in outcome.blocking_reasons
    )
    # housing's set is a warning: reported, not blocking
    assert any("housing" in warning for warning in outcome.warnings)
    assert not any("housing" in reason for reason in outcome.blocking_reasons)
    age = next(
        c
        for c in json.loads(Path(report).read_text())["checks"]
        if c["column"] == "age" and c["rule"] == "expect_column_values_to_be_between"
    )
    assert age["observed"]["unexpected_count"] == 10 and -5 in age["observed"]["sample_unexpected"]
    assert "Data gate: BLOCKED" in Path(docs).read_text()


def test_warnings_only_do_not_block(tmp_path, sample_frame):
    sample_frame.loc[:4, "housing"] = "castle"
    outcome, _ = run_validation(tmp_path, write_csv(sample_frame, tmp_path / "batch.csv"), str(SAMPLE_SUITE))
    assert outcome.passed and outcome.quality_score < 1.0 and len(outcome.warnings) == 1


def test_quality_score_below_minimum_blocks(tmp_path, sample_frame):
    sample_frame.loc[:4, "housing"] = "castle"
    outcome, _ = run_validation(
        tmp_path, write_csv(sample_frame, tmp_path / "b.csv"), str(SAMPLE_SUITE), min_quality=1.0
    )
    assert not outcome.passed
    assert any("quality score" in reason and "below the minimum 1.000" in reason for reason in outcome.blocking_reasons)


def test_row_count_outside_range_blocks(tmp_path, sample_frame):
    outcome, _ = run_validation(tmp_path, write_csv(sample_frame.head(999), tmp_path / "b.csv"), str(SAMPLE_SUITE))
    assert ("expect_table_row_count_to_be_between", None) in rules_failed(outcome)
    assert not outcome.passed


@pytest.mark.parametrize(
    ("mutate", "rule", "column"),
    [
        (lambda f: f.drop(columns=["risk"]), "builtin:target_present", "risk"),
        (lambda f: f.assign(risk=1), "builtin:target_has_two_classes", "risk"),
        (lambda f: f.assign(risk=f["risk"].astype(float).where(f.index > 3)), "builtin:target_not_null", "risk"),
        (lambda f: f.assign(purpose=np.nan), "builtin:no_all_null_columns", "purpose"),
        (
            lambda f: f.assign(credit_amount=f["credit_amount"].astype(float).where(f.index > 0, np.inf)),
            "builtin:no_infinite_values",
            "credit_amount",
        ),
        (lambda f: f.assign(age=f["age"].astype(str) + " years"), "expect_column_values_to_be_in_type_list", "age"),
    ],
    ids=["missing-target", "single-class", "null-target", "all-null-column", "infinity", "wrong-type"],
)
def test_bad_batches_are_blocked_by_name(tmp_path, sample_frame, mutate, rule, column):
    data = write_csv(mutate(sample_frame), tmp_path / "batch.csv")
    outcome, _ = run_validation(tmp_path, data, str(SAMPLE_SUITE))
    assert not outcome.passed
    assert (rule, column) in rules_failed(outcome)
    assert any(rule in reason and column in reason for reason in outcome.blocking_reasons)


def test_missing_data_file_raises(tmp_path):
    with pytest.raises(DataError, match="absent.csv: no such file"):
        run_validation(tmp_path, str(tmp_path / "absent.csv"), str(SAMPLE_SUITE))


def test_malformed_suite_raises_before_reading_data(tmp_path):
    bad = tmp_path / "suite.json"
    bad.write_text('{"expectations": [')
    with pytest.raises(SuiteError, match=r"suite\.json: not valid JSON"):
        run_validation(tmp_path, str(SAMPLE_DATA), str(bad))


def test_integers_beyond_uint64_are_read_as_text_not_a_crash(tmp_path):
    """pandas keeps them as Python ints in an object column, which Parquet cannot store (OverflowError)."""
    from gated_training.data.tables import parse_table

    frame = parse_table("x.csv", b"big,small\n99999999999999999999,1\n,2\n7,3\n")
    assert frame["big"].tolist()[0] == "99999999999999999999" and frame["big"].tolist()[2] == "7"
    assert pd.isna(frame["big"].tolist()[1])
    assert str(frame["small"].dtype) == "int64"
    frame.to_parquet(tmp_path / "written.parquet")


def test_a_suites_pandas_type_names_become_sparks_on_the_spark_engine():
    from gated_training.validation.suite import spark_type_names

    assert spark_type_names(["int64", "Int64", "float64", "str", "object", "bool"]) == [
        "LongType",
        "DoubleType",
        "StringType",
        "BooleanType",
    ]
    assert spark_type_names(["LongType", "int32"]) == ["LongType", "IntegerType"]  # Spark's own names pass


def test_column_expectations_run_on_their_columns_alone_with_the_whole_frames_results(monkeypatch):
    """GX's pandas engine copies the frame it is given for every column expectation's row filter: run_suite
    hands each column's expectations a frame of that column alone. Every check (rule, column, verdict,
    observed values, expected) is the one validating each expectation on the whole frame gives, in the suite's order:
    nulls, ranges with mostly, sets, types, uniqueness, a column pair; and on the whole frame the table's
    expectations, a column list, a row condition and a column the batch lacks."""
    from gated_training.steps import validate_data as step

    rng = np.random.default_rng(3)
    rows = 2_000
    frame = pd.DataFrame(
        {
            "age": np.where(rng.random(rows) < 0.05, np.nan, rng.integers(18, 90, rows).astype(float)),
            "sex": rng.choice(np.array(["male", "female", "other"], dtype=object), rows),
            "income": rng.normal(50_000, 20_000, rows),
            "id": np.arange(rows),
            "copy_of_id": np.arange(rows),
            "flag": rng.random(rows) < 0.5,
            "row count": rng.random(rows),  # named like a group of _column_groups: still a column like the others
        }
    )
    frame.loc[frame.index[::97], "sex"] = None

    def spec(kind, **kwargs):
        return {"type": kind, "kwargs": kwargs, "meta": {}, "severity": "critical"}

    document = {
        "name": "grouping",
        "expectations": [
            spec("expect_table_row_count_to_be_between", min_value=1, max_value=10_000),
            spec("expect_column_values_to_not_be_null", column="age", mostly=0.99),
            spec("expect_column_values_to_be_between", column="age", min_value=20, max_value=80, mostly=0.9),
            spec("expect_column_values_to_be_in_set", column="sex", value_set=["male", "female"]),
            spec("expect_table_columns_to_match_ordered_list", column_list=["age", "sex", "income"]),
            spec("expect_column_values_to_be_unique", column="id"),
            spec("expect_column_pair_values_to_be_equal", column_A="id", column_B="copy_of_id"),
            spec("expect_column_mean_to_be_between", column="income", min_value=40_000, max_value=60_000),
            spec("expect_column_values_to_be_in_type_list", column="flag", type_list=["bool"]),
            spec(
                "expect_column_values_to_be_between",
                column="income",
                min_value=-200_000,
                max_value=200_000,
                row_condition='col("sex") == "male"',
                condition_parser="great_expectations",
            ),
            spec("expect_column_values_to_not_be_null", column="not_there"),
            spec("expect_column_values_to_not_be_null", column="sex"),
            spec("expect_compound_columns_to_be_unique", column_list=["id", "sex"]),
            # the table's shape: validated without the values
            spec("expect_table_row_count_to_equal", value=rows),
            spec(
                "expect_table_row_count_to_equal",
                value=rows,
                row_condition='col("sex") == "male"',
                condition_parser="great_expectations",
            ),
            spec("expect_column_to_exist", column="income", column_index=2),
            spec("expect_column_to_exist", column="income", column_index=0),
            spec("expect_column_to_exist", column="not_there"),
            spec("expect_table_column_count_to_equal", value=7),
            spec("expect_table_columns_to_match_set", column_set=["age", "sex"], exact_match=False),
            spec("expect_column_values_to_be_between", column="row count", min_value=0, max_value=0.5),
        ],
    }
    groups = step._column_groups(document["expectations"], frame)
    whole = [positions for columns, positions in groups if columns is None]
    assert whole == [[9, 10, 12, 14]]  # row condition, missing column, compound, row condition
    assert dict(groups)[step.ROW_COUNT] == [0, 13] and dict(groups)[step.COLUMN_NAMES] == [4, 15, 16, 17, 18, 19]
    assert ("age",) in dict(groups) and ("id", "copy_of_id") in dict(groups) and dict(groups)[("row count",)] == [20]
    grouped = step.run_suite(frame, document, "grouping.json")
    monkeypatch.setattr(step, "_column_groups", lambda specs, data: [(None, list(range(len(specs))))])
    at_once = step.run_suite(frame, document, "grouping.json")
    assert grouped == at_once
    assert [c.passed for c in grouped] == [
        True,
        False,
        False,
        False,
        False,
        True,
        True,
        True,
        True,
        True,
        False,
        False,
        True,
        True,  # row count equal
        False,  # ... among the rows a condition keeps
        True,  # income is the third column
        True,  # GX 1.x reads column_index 0 as "any place" (its check is `if column_index:`), on the whole frame too
        False,
        True,  # seven columns
        True,
        False,  # half the uniform values are above 0.5
    ]


def test_a_columns_results_are_put_back_at_their_own_expectations_whatever_order_gx_returns():
    """GX lists a suite's results in an order of its own: each goes back to the expectation with the same
    arguments first (not one whose arguments it merely includes), identical ones are interchangeable, and a
    result that matches nothing is kept after the rest."""
    from gated_training.steps.validate_data import _by_position

    def spec(**kwargs):
        return {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", **kwargs}}

    def result(tag, **kwargs):
        config = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "batch_id": "b", **kwargs}}
        return {"expectation_config": config, "tag": tag}

    specs = [spec(min_value=0), spec(min_value=0, max_value=10), spec(min_value=0)]
    returned = [result("narrow", min_value=0, max_value=10), result("a", min_value=0), result("b", min_value=0)]
    returned.append({"expectation_config": {"type": "expect_something_else", "kwargs": {}}, "tag": "stray"})
    keyed = _by_position(specs, [0, 1, 2], returned, group=4)
    ordered = [keyed[key]["tag"] for key in sorted(keyed)]
    assert ordered == ["a", "narrow", "b", "stray"] and (1, 4, 3) in keyed

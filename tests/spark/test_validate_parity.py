"""The data gate on both engines: the same bytes give the same verdict, the same failed checks with the
same words, the same fingerprint and the same batch; a file that cannot be read fails alike."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gated_training.errors import GatedTrainingError
from gated_training.steps.validate_data import validate_data
from tests.conftest import REPO_ROOT, SAMPLE_DATA, SAMPLE_SUITE

CORPUS = REPO_ROOT / "tests" / "bad_inputs"
TARGET = "churned"
pytestmark = pytest.mark.spark
# The cases whose refusal is worded differently on Spark: (shared prefix, what the Spark message says).
WORDED_OTHERWISE = {
    "ragged_rows.csv": ("not a well-formed CSV file: ", "a record has 12 fields where the header has 10")
}
MINIMAL_SUITE = {
    "name": "minimal",
    "expectations": [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}],
}

# The data gate's cases of the bad-input corpus (tests/robustness/test_bad_inputs.py) and a few more;
# the schema-contract case belongs to the drift gate.
CASES = [
    ("german_credit.csv", None),
    ("empty.csv", None),
    ("header_only.csv", None),
    ("missing_target.csv", None),
    ("single_class.csv", None),
    ("unseen_target_labels.csv", None),
    ("wrong_types.csv", None),
    ("all_null_column.csv", None),
    ("all_constant_column.csv", None),
    ("infinities.csv", None),
    ("non_utf8.csv", None),
    ("ragged_rows.csv", None),
    ("duplicate_columns.csv", None),
    ("overflow.csv", None),
    ("huge_integers.csv", None),
    ("german_credit.csv", "malformed_suite.expectations.json"),
    ("german_credit.csv", "unknown_expectation.expectations.json"),
    ("german_credit.csv", "excluded_everything.expectations.json"),
]


def run(engine, data, suite, out):
    out.mkdir(parents=True, exist_ok=True)
    try:
        outcome = validate_data(
            data_uri=str(data),
            suite_uri=str(suite),
            target="risk",
            min_quality_score=0.9,
            dataset_out=str(out / "batch.parquet"),
            report_out=str(out / "report.json"),
            data_docs_out=str(out / "page.html"),
            engine=engine,
        )
    except GatedTrainingError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    failed = [(c.rule, c.column, c.severity) for c in outcome.checks if not c.passed]
    builtin = {c.rule: c.describe() for c in outcome.checks if c.rule.startswith("builtin:") and not c.passed}
    return {
        "passed": outcome.passed,
        "quality_score": outcome.quality_score,
        "failed": failed,
        "builtin_reasons": builtin,
        "data_sha256": outcome.data_sha256,
        "file_sha256": outcome.file_sha256,
        "rows": outcome.row_count,
        "columns": outcome.column_count,
        "excluded": outcome.excluded_columns,
    }


@pytest.mark.parametrize(("data", "suite"), CASES, ids=[(s or d).split(".")[0] for d, s in CASES])
def test_the_data_gate_decides_alike_on_both_engines(spark, tmp_path, data, suite):
    data_path = SAMPLE_DATA if data == "german_credit.csv" else CORPUS / data
    suite_path = CORPUS / suite if suite else SAMPLE_SUITE
    on_pandas = run("pandas", data_path, suite_path, tmp_path / "pandas")
    on_spark = run("spark", data_path, suite_path, tmp_path / "spark")
    if data in WORDED_OTHERWISE:
        # pandas' tokenizer counts lines, Spark's reader does not: the same refusal, the record named instead.
        prefix, spark_words = WORDED_OTHERWISE[data]
        assert on_pandas["error"] == on_spark["error"] == "DataError"
        assert on_pandas["message"].startswith(f"{data_path}: {prefix}")
        assert on_spark["message"].startswith(f"{data_path}: {prefix}")
        assert spark_words in on_spark["message"], on_spark["message"]
        return
    assert on_spark == on_pandas
    if "error" not in on_pandas:
        batch_pandas = pd.read_parquet(tmp_path / "pandas" / "batch.parquet")
        batch_spark = pd.read_parquet(tmp_path / "spark" / "batch.parquet")
        pd.testing.assert_frame_equal(batch_spark, batch_pandas)
        report = json.loads((tmp_path / "spark" / "report.json").read_text())
        assert report["data_sha256"] == on_pandas["data_sha256"]


def test_a_table_typed_by_pandas_reader_is_typed_alike_on_spark(spark, tmp_path):
    """Missing-value tokens, integers with a gap, booleans with and without a gap, numbers in exponent form,
    an integer beyond int64, a byte-order mark, quoted commas and text that looks like a number in one row."""
    rows = [
        "\ufeffid,score,flag,maybe,big,text,risk",
        '1,1.5,True,true,99999999999999999999,"a, b",good',
        "2,NA,False,,1,7,bad",
        "3,1e3,TRUE,false,2,x,good",
        ",-inf,false,FALSE,3,n/a,bad",
        "5,NaN,true,True,4,,good",
    ]
    path = tmp_path / "typed.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    suite = tmp_path / "empty.expectations.json"
    suite.write_text(json.dumps(MINIMAL_SUITE))
    on_pandas = run("pandas", path, suite, tmp_path / "pandas")
    on_spark = run("spark", path, suite, tmp_path / "spark")
    assert on_spark == on_pandas
    assert on_pandas["builtin_reasons"].keys() == {"builtin:no_infinite_values"}
    expected = pd.read_csv(path)
    written = pd.read_parquet(tmp_path / "spark" / "batch.parquet")
    assert list(written.columns) == list(expected.columns)
    for column in expected.columns:
        assert str(expected[column].dtype).startswith(("int", "float", "bool")) == str(
            written[column].dtype
        ).startswith(("int", "float", "bool")), column


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".csv.gz"])
def test_the_bench_table_has_one_fingerprint_and_one_batch_on_both_engines(spark, tmp_path, suffix):
    """20k rows of the bench's 30-column table (numbers with gaps, text with a rare level, booleans)."""
    from gated_training.data import synthetic

    frame = synthetic.generate_wide(20_000, columns=30, seed=3)
    path = tmp_path / f"batch{suffix}"
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    suite = tmp_path / "empty.expectations.json"
    suite.write_text(json.dumps(MINIMAL_SUITE))
    results = {}
    for engine in ("pandas", "spark"):
        (tmp_path / engine).mkdir()
        outcome = validate_data(
            data_uri=str(path),
            suite_uri=str(suite),
            target=TARGET,
            min_quality_score=0.0,
            dataset_out=str(tmp_path / engine / "batch.parquet"),
            report_out=str(tmp_path / f"{engine}.json"),
            data_docs_out=str(tmp_path / f"{engine}.html"),
            engine=engine,
        )
        results[engine] = (outcome.data_sha256, outcome.passed, [c.rule for c in outcome.checks if not c.passed])
    assert results["spark"] == results["pandas"]
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "spark" / "batch.parquet"), pd.read_parquet(tmp_path / "pandas" / "batch.parquet")
    )


def broken_files(directory):
    """Files each engine must refuse alike: (name, bytes, shared prefix of the message)."""
    import bz2
    import gzip

    sample = SAMPLE_DATA.read_bytes()
    parquet = directory / "whole.parquet"
    pd.read_csv(SAMPLE_DATA).to_parquet(parquet, index=False)
    return [
        ("blank.csv", b"  \n\n ", "the file is empty"),
        ("truncated.parquet", parquet.read_bytes()[:300], "not a readable Parquet file: "),
        ("not-gzip.csv.gz", b"this is not gzip at all", "not a readable gzip file: "),
        ("cut.csv.gz", gzip.compress(sample)[:200], "not a readable gzip file: "),
        ("cut.csv.bz2", bz2.compress(sample)[:200], "not a readable bz2 file: "),
        ("archive.zip", b"PK\x03\x04", ".zip archives are not read"),
    ]


@pytest.mark.parametrize("index", range(6))
def test_a_broken_file_is_refused_alike_on_both_engines(spark, tmp_path, index):
    name, content, prefix = broken_files(tmp_path)[index]
    path = tmp_path / name
    path.write_bytes(content)
    on_pandas = run("pandas", path, SAMPLE_SUITE, tmp_path / "pandas")
    on_spark = run("spark", path, SAMPLE_SUITE, tmp_path / "spark")
    assert on_pandas["error"] == on_spark["error"] == "DataError", (on_pandas, on_spark)
    assert on_pandas["message"].startswith(f"{path}: {prefix}"), on_pandas["message"]
    assert on_spark["message"].startswith(f"{path}: {prefix}"), on_spark["message"]


def test_short_rows_are_padded_on_both_engines_and_xz_is_refused_on_spark_by_name(spark, tmp_path):
    import lzma

    lines = SAMPLE_DATA.read_text().splitlines()
    lines[5] = ",".join(lines[5].split(",")[:7])  # three fields short: pandas pads them with missing values
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines) + "\n")
    assert run("spark", short, SAMPLE_SUITE, tmp_path / "s") == run("pandas", short, SAMPLE_SUITE, tmp_path / "p")
    packed = tmp_path / "sample.csv.xz"
    packed.write_bytes(lzma.compress(SAMPLE_DATA.read_bytes()))
    assert "error" not in run("pandas", packed, SAMPLE_SUITE, tmp_path / "xp")
    refused = run("spark", packed, SAMPLE_SUITE, tmp_path / "xs")
    assert refused["error"] == "DataError" and ".xz is not read by the Spark engine" in refused["message"]


@pytest.mark.parametrize(
    "condition",
    [
        {"row_condition": 'col("sex") == "male"', "condition_parser": "great_expectations"},
        {"row_condition": {"type": "comparison", "column": {"name": "sex"}, "operator": "==", "parameter": "male"}},
    ],
    ids=["gx-grammar", "structured"],
)
def test_a_row_condition_filters_alike_on_both_engines(spark, tmp_path, condition):
    """Only the men's rows are checked: 'sex' in {male} passes with the filter and would fail without it."""
    suite = tmp_path / "conditional.expectations.json"
    expectation = {"column": "sex", "value_set": ["male"], **condition}
    suite.write_text(
        json.dumps(
            {"name": "c", "expectations": [{"type": "expect_column_values_to_be_in_set", "kwargs": expectation}]}
        )
    )
    on_pandas = run("pandas", SAMPLE_DATA, suite, tmp_path / "pandas")
    on_spark = run("spark", SAMPLE_DATA, suite, tmp_path / "spark")
    assert on_spark == on_pandas and on_pandas["passed"], on_pandas

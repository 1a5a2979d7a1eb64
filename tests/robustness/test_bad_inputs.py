"""The bad-input corpus (tests/bad_inputs/) through the compiled pipeline: each ends blocked or
failed with a message naming the problem, in bounded time and memory, champion and registry unchanged."""

import time

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, SAMPLE_DATA, SAMPLE_SUITE
from tests.integration.conftest import (
    DATA_BLOCKED_TASKS,
    DRIFT_STOPPED_TASKS,
    FAILED_AT_VALIDATION_TASKS,
    copy_setup,
)
from tests.registry_helpers import registry_bytes

CORPUS = REPO_ROOT / "tests" / "bad_inputs"
MAX_SECONDS = 120  # per run, all steps
MAX_STEP_RSS_MIB = 1536

CASES = [  # data, suite (None: the sample's), outcome, text the reasons must contain
    ("empty.csv", None, "failed", "the file is empty"),
    ("header_only.csv", None, "failed", "but no rows"),
    ("missing_target.csv", None, "blocked", "builtin:target_present on column 'risk'"),
    ("single_class.csv", None, "blocked", "builtin:target_has_two_classes"),
    ("unseen_target_labels.csv", None, "blocked", "expect_column_values_to_be_in_set on column 'risk'"),
    ("wrong_types.csv", None, "blocked", "on column 'age'"),
    ("all_null_column.csv", None, "blocked", "builtin:no_all_null_columns on column 'credit_amount'"),
    ("all_constant_column.csv", None, "blocked", "builtin:no_constant_columns on column 'duration'"),
    ("infinities.csv", None, "blocked", "builtin:no_infinite_values on column 'credit_amount'"),
    ("non_utf8.csv", None, "failed", "not valid UTF-8 at byte 364 (line 8)"),
    ("ragged_rows.csv", None, "failed", "not a well-formed CSV"),
    ("duplicate_columns.csv", None, "failed", "duplicate column names"),
    (SAMPLE_DATA, "malformed_suite.expectations.json", "failed", "malformed_suite.expectations.json"),
    (SAMPLE_DATA, "unknown_expectation.expectations.json", "failed", "expect_column_values_to_be_magical"),
    ("wide", None, "blocked", "expect_table_row_count_to_be_between"),
    ("overflow.csv", None, "blocked", "builtin:no_overflowing_values on column 'credit_amount'"),
    # pandas keeps an integer beyond uint64 as a Python int, which Parquet cannot store: it crashed the step.
    ("huge_integers.csv", None, "blocked", "expect_column_values_to_be_in_type_list on column 'credit_amount'"),
    (
        SAMPLE_DATA,
        "excluded_everything.expectations.json",
        "failed",
        "meta.excluded_features excludes every feature of the batch",
    ),
    # The README's "your own data" path in a workdir that holds another champion: the user's own suite
    # passes, the schema contract blocks (it once crashed formatting an infinite PSI: failed, exit 1).
    ("missing_feature.csv", "missing_feature.expectations.json", "blocked", "schema: feature(s) age of champion"),
]
# Where a run stops when it is not the data gate (blocked) or validation itself (failed).
TASKS = {"missing_feature.csv": DRIFT_STOPPED_TASKS}


@pytest.fixture(scope="module")
def corpus_setup(sample_champion, tmp_path_factory):
    return copy_setup(sample_champion, tmp_path_factory.mktemp("corpus") / "setup")


def wide_file(directory):
    """200 rows × 10,000 columns: the sample's ten plus 9,990 numeric ones."""
    path = directory / "wide_10000_columns.csv"
    sample = pd.read_csv(SAMPLE_DATA).head(200)
    extra = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 9990)), columns=[f"x{i}" for i in range(9990)])
    pd.concat([sample, extra], axis=1).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("data", "suite", "outcome", "message"), CASES, ids=[str(c[1] or c[0]).split("/")[-1] for c in CASES]
)
def test_bad_input_ends_blocked_or_failed_and_changes_nothing(corpus_setup, tmp_path, data, suite, outcome, message):
    before = registry_bytes(corpus_setup.registry)
    assert before  # the champion is there to be kept
    champion_before = corpus_setup.champion_version()
    data_path = wide_file(tmp_path) if data == "wide" else (CORPUS / data if isinstance(data, str) else data)
    suite_path = CORPUS / suite if suite else SAMPLE_SUITE

    started = time.monotonic()
    result = corpus_setup.run("--suite", str(suite_path), data=data_path, name=f"bad-{tmp_path.name}")
    elapsed = time.monotonic() - started

    summary = result.summary
    assert summary["outcome"] == outcome, summary["reasons"]
    assert any(message in reason for reason in summary["reasons"]), summary["reasons"]
    assert result.exit_code == (0 if outcome == "blocked" else 1)
    # Blocked: validation ran and reported; failed: validation itself failed, so nothing completed.
    expected = TASKS.get(data) if isinstance(data, str) else None
    assert result.tasks == (expected or (DATA_BLOCKED_TASKS if outcome == "blocked" else FAILED_AT_VALIDATION_TASKS))
    assert elapsed < MAX_SECONDS, f"{elapsed:.0f} s"
    peaks = {step: usage["peak_rss_mib"] for step, usage in summary["step_usage"].items()}
    assert peaks and max(peaks.values()) < MAX_STEP_RSS_MIB, peaks
    assert registry_bytes(corpus_setup.registry) == before
    assert corpus_setup.champion_version() == champion_before

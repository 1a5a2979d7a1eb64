"""The compiled pipeline through kfp.local with ``engine=spark``: validate-data runs on Spark (local[2]) in its
step process, and the run ends as the pandas engine's does; a batch the data gate blocks on pandas is blocked
on Spark by the same check, and the registry is unchanged byte for byte."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO_ROOT, SAMPLE_SUITE
from tests.integration.conftest import (
    DATA_BLOCKED_TASKS,
    DEPLOYED_TASKS,
    FAILED_AT_VALIDATION_TASKS,
    LocalSetup,
    copy_setup,
)
from tests.registry_helpers import registry_bytes

pytestmark = [pytest.mark.spark, pytest.mark.integration]
CORPUS = REPO_ROOT / "tests" / "bad_inputs"
# engine=spark trains estimator=xgboost (the run form refuses another); the Makefile's SPARK_TRAINING for make run.
SPARK_TRAINING = ("--set", "training.estimator=xgboost", "--set", "training.max_depth=3")


@pytest.fixture(scope="module")
def spark_setup(sample_champion, tmp_path_factory):
    """One private copy of the sample's champion for this module's runs (the template is never run in)."""
    return copy_setup(sample_champion, tmp_path_factory.mktemp("spark-runs") / "setup")


@pytest.mark.slow  # make test-slow (make test-all), not CI's make test-spark: see tests/spark/conftest.py
def test_the_sample_deploys_on_the_spark_engine_with_the_pandas_engines_fingerprint(sample_champion, tmp_path):
    """A first run on Spark against the shared champion's own first run, which ran on pandas."""
    on_spark = LocalSetup(tmp_path / "spark").run("--set", "engine=spark", *SPARK_TRAINING, name="first")
    assert on_spark.summary["outcome"] == "deployed", on_spark.summary["reasons"]
    assert on_spark.tasks == DEPLOYED_TASKS
    reports = {
        "pandas": json.loads(next((sample_champion.root / "champion").rglob("validation_report")).read_text()),
        "spark": json.loads(next((tmp_path / "spark").rglob("validation_report")).read_text()),
    }
    assert reports["spark"]["data_sha256"] == reports["pandas"]["data_sha256"]
    assert [c["passed"] for c in reports["spark"]["checks"]] == [c["passed"] for c in reports["pandas"]["checks"]]


@pytest.mark.parametrize(
    ("data", "outcome", "tasks", "message"),
    [
        ("single_class.csv", "blocked", DATA_BLOCKED_TASKS, "builtin:target_has_two_classes"),
        ("non_utf8.csv", "failed", FAILED_AT_VALIDATION_TASKS, "not valid UTF-8 at byte 364 (line 8)"),
    ],
)
def test_bad_input_on_the_spark_engine_ends_as_on_pandas_and_changes_nothing(
    spark_setup, tmp_path, data, outcome, tasks, message
):
    before = registry_bytes(spark_setup.registry)
    result = spark_setup.run(
        "--set",
        "engine=spark",
        *SPARK_TRAINING,
        "--suite",
        str(SAMPLE_SUITE),
        data=CORPUS / data,
        name=f"spark-{tmp_path.name}",
    )
    assert result.summary["outcome"] == outcome, result.summary["reasons"]
    assert any(message in reason for reason in result.summary["reasons"]), result.summary["reasons"]
    assert result.tasks == tasks
    assert registry_bytes(spark_setup.registry) == before


def test_a_drifted_batch_is_blocked_on_spark_for_the_reasons_pandas_gives(sample_champion, tmp_path):
    """The champion's profile against a batch whose amounts, durations and ages moved: check-drift on Spark
    blocks it with the pandas engine's reasons and numbers, and neither run touches the registry."""
    import pandas as pd

    from tests.conftest import SAMPLE_DATA
    from tests.integration.conftest import DRIFT_STOPPED_TASKS

    drifted = pd.read_csv(SAMPLE_DATA)
    drifted["credit_amount"] = drifted["credit_amount"] * 3
    drifted["duration"] = drifted["duration"] + 40
    drifted["age"] = drifted["age"] + 20
    data = tmp_path / "moved.csv"
    drifted.to_csv(data, index=False)
    results = {}
    for engine in ("pandas", "spark"):
        setup = copy_setup(sample_champion, tmp_path / engine)
        before = registry_bytes(setup.registry)
        results[engine] = setup.run(
            "--set", f"engine={engine}", *SPARK_TRAINING, "--suite", str(SAMPLE_SUITE), data=data, name="drifted"
        )
        assert registry_bytes(setup.registry) == before
    assert results["spark"].summary["outcome"] == results["pandas"].summary["outcome"] == "blocked"
    assert results["spark"].tasks == results["pandas"].tasks == DRIFT_STOPPED_TASKS
    assert results["spark"].summary["reasons"] == results["pandas"].summary["reasons"]
    assert any("credit_amount" in reason and "age" in reason for reason in results["spark"].summary["reasons"])

"""The Spark engine's tests: one local[2] session per worker, shared (starting the JVM costs seconds).
Every module here is marked ``spark`` (``pytestmark``) and runs in `make test-spark`, not in `make test`. The cases
that repeat a mechanism CI already proves on Spark at several times its cost are also marked ``slow`` and run in
`make test-slow` (and `make test-all`): the sample deploying through the whole pipeline on Spark (its validate-data
and check-drift on Spark stay in CI through the drifted and bad batches), four of the five steps in a SparkApplication
(check-drift and both failure paths stay), and the native, wide and two-worker training cases (the sample's
bit-for-bit booster stays). CI's budget is 25 minutes on 2 cores; `make test-spark` alone took 11.5 of them."""

from __future__ import annotations

import pytest

from gated_training.spark import java_available


@pytest.fixture(scope="session")
def spark():
    if not java_available():
        pytest.fail("the Spark engine's tests need Java: make spark-venv installs openjdk-17-jre-headless")
    from gated_training.spark import spark_session

    return spark_session("gated-training-tests")


from tests.integration.conftest import sample_champion  # noqa: F401 - the pipeline tests' champion


@pytest.fixture(scope="session")
def sample_candidate(spark, tmp_path_factory) -> dict[str, str]:
    """The sample's splits engineer-features wrote on Spark (part files) and a random forest trained on them by
    the pandas engine: the candidate the evaluate-model tests gate, built once per session."""
    import pandas as pd

    from tests.conftest import SAMPLE_DATA
    from tests.spark.test_evaluation_parity import candidate

    return candidate(spark, tmp_path_factory.mktemp("sample-candidate") / "c", pd.read_csv(SAMPLE_DATA), "risk")

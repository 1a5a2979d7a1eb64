"""Bad input ends the run as blocked (data) or failed, before any deploy, with the champion untouched.

The corpus of bad files and suites is tests/bad_inputs/ (tests/robustness/test_bad_inputs.py);
these are the cases that are not a file: a missing path, no suite, bad parameters."""

import json
import re

import pytest

from gated_training.kubeflow.local_run import run_compiled_pipeline
from tests.conftest import COMPILED_PIPELINE, SAMPLE_DATA, SAMPLE_SUITE
from tests.integration.conftest import DEPLOYED_TASKS, FAILED_AT_VALIDATION_TASKS, WEAK_MODEL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def champion(setup):
    result = setup.run(*WEAK_MODEL, name="champion")
    assert result.tasks == DEPLOYED_TASKS
    return setup.pointer.read_bytes()


def assert_untouched(setup, champion_pointer: bytes) -> None:
    assert setup.pointer.read_bytes() == champion_pointer
    assert len(list((setup.registry / "tabular-classifier" / "versions").iterdir())) == 1


def test_missing_data_fails_and_names_the_file(setup, champion, tmp_path):
    result = setup.run("--suite", str(SAMPLE_SUITE), data=tmp_path / "missing.csv", name="missing")
    assert result.exit_code == 1
    assert result.tasks == FAILED_AT_VALIDATION_TASKS  # validate-data failed: nothing after it ran
    assert result.summary["outcome"] == "failed" and result.summary["deployed"] is None
    assert re.search(r"validate-data failed: DataError: .*missing\.csv: no such file", result.summary["reasons"][0])
    assert_untouched(setup, champion)


def test_data_without_a_suite_fails_clearly(setup, champion, tmp_path):
    data = tmp_path / "orders.csv"
    data.write_bytes(SAMPLE_DATA.read_bytes())
    result = setup.run(data=data, name="no-suite")
    assert (result.exit_code, result.tasks, result.summary["outcome"]) == (1, FAILED_AT_VALIDATION_TASKS, "failed")
    assert "no expectation suite for" in result.summary["reasons"][0] and "suite init" in result.summary["reasons"][0]
    assert_untouched(setup, champion)


def test_threshold_outside_unit_interval_is_refused_before_running(setup, champion):
    result = setup.run("--set", "min_accuracy=1.5", name="bad-threshold")
    assert (result.exit_code, result.tasks, result.summary["outcome"]) == (2, [], "failed")
    assert "parameter min_accuracy=1.5: must be within [0, 1]" in result.summary["reasons"][0]
    assert_untouched(setup, champion)


def test_invalid_threshold_inside_the_pipeline_fails_closed(setup, champion, tmp_path):
    """A run form on a cluster bypasses the CLI: the evaluate step itself refuses the threshold."""
    from gated_training.cli.common import resolve_parameters
    from gated_training.kubeflow.spec import component_inputs

    parameters = resolve_parameters(
        component_inputs(COMPILED_PIPELINE),
        [
            {
                "data_uri": str(SAMPLE_DATA),
                "registry_uri": str(setup.registry),
                "mlflow_tracking_uri": setup.tracking_uri,
                "min_accuracy": -0.5,
                "n_estimators": 1,
                "max_depth": 1,
                "force_retrain": True,
            }
        ],
    )
    result = run_compiled_pipeline(COMPILED_PIPELINE, parameters, tmp_path / "work")
    assert result.tasks_ran == ["check-drift", "engineer-features", "train-model", "validate-data"]
    assert result.summary["outcome"] == "failed"
    assert result.summary["reasons"] == [
        "evaluate-model failed: ConfigError: parameter min_accuracy=-0.5: must be within [0, 1]"
    ]
    # The training run it made is marked failed in MLflow (a step after training raised).
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=setup.tracking_uri)
    experiment = client.get_experiment_by_name("gated-training")
    (latest,) = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    assert latest.data.tags["gated_training.outcome"] == "failed"
    assert json.loads(setup.pointer.read_text()) == json.loads(champion)

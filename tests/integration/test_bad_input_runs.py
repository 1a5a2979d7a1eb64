"""Bad input ends the run as blocked (data) or failed, before any deploy, with the champion untouched."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from gated_training.local_run import run_compiled_pipeline
from tests.conftest import COMPILED_PIPELINE, SAMPLE_DATA, SAMPLE_SUITE
from tests.integration.conftest import DATA_BLOCKED_TASKS, DEPLOYED_TASKS, WEAK_MODEL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def champion(setup):
    result = setup.run(*WEAK_MODEL, name="champion")
    assert result.tasks == DEPLOYED_TASKS
    return setup.pointer.read_bytes()


def assert_untouched(setup, champion_pointer: bytes) -> None:
    assert setup.pointer.read_bytes() == champion_pointer
    assert len(list((setup.registry / "tabular-classifier" / "versions").iterdir())) == 1


def csv_with(tmp_path, mutate) -> str:
    path = tmp_path / "batch.csv"
    mutate(pd.read_csv(SAMPLE_DATA)).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda d: None, r"DataError: .*missing\.csv: no such file"),
        (lambda d: d.write_bytes(b""), r"DataError: .*missing\.csv: the file is empty"),
        (lambda d: d.write_text(SAMPLE_DATA.read_text().splitlines()[0] + "\n"), r"has a header .* but no rows"),
        (lambda d: d.write_bytes(SAMPLE_DATA.read_bytes().replace(b"radio/TV", "radio/TV\xa0".encode("latin-1"), 1)),
         r"missing\.csv: not valid UTF-8 at byte \d+ \(line 2\)"),
    ],
    ids=["missing-file", "empty-file", "header-only", "non-utf8"],
)
def test_unreadable_data_fails_and_names_the_file(setup, champion, tmp_path, write, message):
    data = tmp_path / "missing.csv"
    write(data)
    result = setup.run("--suite", str(SAMPLE_SUITE), data=data, name=f"bad-{tmp_path.name}")
    assert result.exit_code == 1
    assert result.tasks == []  # validate-data failed: nothing after it ran
    assert result.summary["outcome"] == "failed" and result.summary["deployed"] is None
    assert result.summary["reasons"][0].startswith("validate-data failed: ")
    assert re.search(message, result.summary["reasons"][0]), result.summary["reasons"]
    assert_untouched(setup, champion)


def test_malformed_suite_fails_and_names_it(setup, champion, tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(SAMPLE_SUITE.read_text()[:-20])
    result = setup.run("--suite", str(suite), name="bad-suite")
    assert (result.exit_code, result.tasks, result.summary["outcome"]) == (1, [], "failed")
    assert f"SuiteError: {suite}: not valid JSON at line" in result.summary["reasons"][0]
    assert_untouched(setup, champion)


def test_data_without_a_suite_fails_clearly(setup, champion, tmp_path):
    data = tmp_path / "orders.csv"
    data.write_bytes(SAMPLE_DATA.read_bytes())
    result = setup.run(data=data, name="no-suite")
    assert (result.exit_code, result.summary["outcome"]) == (1, "failed")
    assert "no expectation suite for" in result.summary["reasons"][0] and "suite init" in result.summary["reasons"][0]
    assert_untouched(setup, champion)


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [
        (lambda f: f.drop(columns=["risk"]), "builtin:target_present"),
        (lambda f: f.assign(risk=1), "builtin:target_has_two_classes"),
        (lambda f: f.assign(age=f["age"].astype(str) + "y"), "expect_column_values_to_be_in_type_list"),
        (lambda f: f.assign(purpose=np.nan), "builtin:no_all_null_columns"),
        (lambda f: f.assign(credit_amount=f["credit_amount"].astype(float).where(f.index > 2, np.inf)),
         "builtin:no_infinite_values"),
    ],
    ids=["missing-target", "single-class", "wrong-type", "all-null-column", "infinities"],
)
def test_bad_batches_are_blocked_by_data(setup, champion, tmp_path, mutate, rule):
    result = setup.run("--suite", str(SAMPLE_SUITE), data=csv_with(tmp_path, mutate), name=f"blocked-{tmp_path.name}")
    assert result.exit_code == 0 and result.tasks == DATA_BLOCKED_TASKS
    assert (result.summary["outcome"], result.summary["blocked_by"]) == ("blocked", "data")
    assert any(rule in reason for reason in result.summary["reasons"]), result.summary["reasons"]
    assert_untouched(setup, champion)


def test_threshold_outside_unit_interval_is_refused_before_running(setup, champion):
    result = setup.run("--set", "min_accuracy=1.5", name="bad-threshold")
    assert (result.exit_code, result.tasks, result.summary["outcome"]) == (2, [], "failed")
    assert "parameter min_accuracy=1.5: must be within [0, 1]" in result.summary["reasons"][0]
    assert_untouched(setup, champion)


def test_invalid_threshold_inside_the_pipeline_fails_closed(setup, champion, tmp_path):
    """A run form on a cluster bypasses the CLI: the evaluate step itself refuses the threshold."""
    from gated_training.cli import resolve_parameters
    from gated_training.local_run import component_inputs

    parameters = resolve_parameters(component_inputs(COMPILED_PIPELINE), [{
        "data_uri": str(SAMPLE_DATA), "registry_uri": str(setup.registry), "mlflow_tracking_uri": setup.tracking_uri,
        "min_accuracy": -0.5, "n_estimators": 1, "max_depth": 1,
    }])
    result = run_compiled_pipeline(COMPILED_PIPELINE, parameters, tmp_path / "work")
    assert result.tasks_ran == ["engineer-features", "train-model", "validate-data"]
    assert result.summary["outcome"] == "failed"
    assert result.summary["reasons"] == ["evaluate-model failed: ConfigError: parameter min_accuracy=-0.5: must be within [0, 1]"]
    assert json.loads(setup.pointer.read_text()) == json.loads(champion)

"""The five journeys of the core issue, in order on one registry: each depends on the champion before it."""

import hashlib
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE
from tests.integration.conftest import (
    DATA_BLOCKED_TASKS,
    DEPLOYED_TASKS,
    MODEL_BLOCKED_TASKS,
    WEAK_MODEL,
)

pytestmark = pytest.mark.integration
MODEL_NAME = "tabular-classifier"


def mlflow_champion(setup):
    client = mlflow.MlflowClient(tracking_uri=setup.tracking_uri, registry_uri=setup.tracking_uri)
    return client.get_model_version_by_alias(MODEL_NAME, "champion")


@pytest.fixture(scope="module")
def first(setup):
    return setup.run(*WEAK_MODEL, name="first")


@pytest.fixture(scope="module")
def better(setup, first):
    return setup.run(name="better")


@pytest.fixture(scope="module")
def worse(setup, better):
    # The strict rule: the rows must show the candidate within max_regression of the champion.
    return setup.run(*WEAK_MODEL, "--set", "comparison_rule=non_inferiority", name="worse")


def test_first_run_deploys(setup, first):
    assert first.exit_code == 0
    assert first.tasks == DEPLOYED_TASKS
    summary = first.summary
    assert (summary["outcome"], summary["blocked_by"], summary["champion"]) == ("deployed", None, None)
    assert summary["deployed"]["version"] == setup.champion_version()
    assert summary["deployed"]["mlflow_mirror"] == "synced"
    assert summary["candidate_metrics"]["accuracy"] == pytest.approx(123 / 172)  # the stable split holds 172 rows out
    assert all(check["passed"] for check in summary["checks"])
    assert {c["gate"] for c in summary["checks"]} == {"data", "model"}
    client = mlflow.MlflowClient(tracking_uri=setup.tracking_uri)
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.tags["data_sha256"] == summary["data_sha256"]
    assert run.data.tags["kfp_run_id"] == summary["kfp_run_id"]
    # How the run ended leads its name (the MLflow runs list shows it without a column) and is its description.
    assert run.info.run_name.startswith("deployed · ") and run.info.run_name.count(" · ") == 1
    assert run.data.tags["mlflow.note.content"].startswith(f"Deployed as registry version {setup.champion_version()}")
    assert mlflow_champion(setup).tags["registry_version"] == setup.champion_version()
    manifest = json.loads(
        (setup.registry / MODEL_NAME / "versions" / setup.champion_version() / "manifest.json").read_text()
    )
    assert manifest["data_sha256"] == summary["data_sha256"] and manifest["kfp_run_id"] == summary["kfp_run_id"]
    assert manifest["mlflow_run_id"] == summary["mlflow_run_id"]
    assert (
        manifest["pipeline"]["version"] == f"local:{summary['parameters']['pipeline_version'].removeprefix('local:')}"
    )
    assert manifest["pipeline"]["version"].endswith("training_pipeline.yaml")
    assert set(manifest["files"]) == {
        "serve/model.joblib",
        "serve/model-settings.json",
        "feature_metadata.json",
        "training_report.json",
        "gate_decision.json",
        "smoke_rows.parquet",
        "smoke_predictions.json",
        "smoke_probabilities.json",
        "reference_profile.json",
        "suite.json",  # the suite the data gate ran, byte for byte: monitoring checks live calls against it
    }
    suite = (setup.registry / MODEL_NAME / "versions" / setup.champion_version() / "suite.json").read_bytes()
    assert hashlib.sha256(suite).hexdigest() == manifest["suite"]["sha256"]
    assert suite == Path(manifest["suite"]["uri"]).read_bytes()


def test_a_local_run_points_at_its_reports_with_extensions_a_browser_opens(setup, first, capsys):
    reports = first.summary["reports"]
    assert list(reports) == [
        "validate-data/data_docs",
        "validate-data/summary",
        "check-drift/drift_html",
        "check-drift/summary",
        "evaluate-model/gate_report",
        "evaluate-model/summary",
        "deploy-model/summary",
    ]
    for name, path in reports.items():
        assert path.endswith(".html" if name.endswith(("data_docs", "drift_html")) else ".md"), name
        assert Path(path).is_file() and Path(path).stat().st_size > 0, name
    assert Path(reports["deploy-model/summary"]).read_text().startswith("# Deployed")


def test_second_run_better_than_champion_deploys(setup, first, better):
    assert better.exit_code == 0 and better.tasks == DEPLOYED_TASKS
    summary = better.summary
    assert summary["outcome"] == "deployed"
    assert summary["champion"]["version"] == first.summary["deployed"]["version"]
    assert summary["champion"]["metrics"]["accuracy"] == pytest.approx(123 / 172)  # re-scored on this test split
    assert summary["candidate_metrics"]["accuracy"] == pytest.approx(132 / 172)
    assert setup.champion_version() == summary["deployed"]["version"]
    assert mlflow_champion(setup).tags["registry_version"] == summary["deployed"]["version"]
    versions = sorted(p.name for p in (setup.registry / MODEL_NAME / "versions").iterdir())
    assert versions == sorted([first.summary["deployed"]["version"], summary["deployed"]["version"]])


def test_second_run_worse_than_champion_is_blocked(setup, better, worse):
    champion = better.summary["deployed"]["version"]
    assert worse.exit_code == 0 and worse.tasks == MODEL_BLOCKED_TASKS
    summary = worse.summary
    assert (summary["outcome"], summary["blocked_by"], summary["deployed"]) == ("blocked", "model", None)
    assert summary["champion"]["version"] == champion
    failed = [c for c in summary["checks"] if not c["passed"]]
    assert failed[0]["name"] == "not_worse_than_champion (accuracy)" and failed[0]["threshold"] == -0.01
    assert failed[0]["value"] == pytest.approx((123 - 132) / 172)  # the small forest against the default one
    assert "Rule non_inferiority: the interval's lower bound must be at least -0.01" in failed[0]["detail"]
    assert any("champion" in reason for reason in summary["reasons"])
    assert setup.champion_version() == champion
    assert mlflow_champion(setup).tags["registry_version"] == champion


def test_blocked_by_model_thresholds(setup, worse):
    champion = setup.champion_version()
    result = setup.run("--set", "min_accuracy=0.95", name="strict")  # the last --set wins
    assert result.exit_code == 0 and result.tasks == MODEL_BLOCKED_TASKS
    assert (result.summary["outcome"], result.summary["blocked_by"]) == ("blocked", "model")
    failed = {c["name"]: c for c in result.summary["checks"] if not c["passed"]}
    assert failed["min_accuracy"]["threshold"] == 0.95 and failed["min_accuracy"]["value"] == pytest.approx(132 / 172)
    assert setup.champion_version() == champion
    run = mlflow.MlflowClient(tracking_uri=setup.tracking_uri).get_run(result.summary["mlflow_run_id"])
    assert run.info.run_name.startswith("blocked by the model gate · ")
    assert "min_accuracy" in run.data.tags["mlflow.note.content"]


def test_blocked_by_data_never_trains(setup, worse, tmp_path):
    champion = setup.champion_version()
    batch = pd.read_csv(SAMPLE_DATA).drop(columns=["duration"])
    data = tmp_path / "batch.csv"
    batch.to_csv(data, index=False)
    result = setup.run("--suite", str(SAMPLE_SUITE), data=data, name="bad-data")
    assert result.exit_code == 0 and result.tasks == DATA_BLOCKED_TASKS
    summary = result.summary
    assert (summary["outcome"], summary["blocked_by"], summary["mlflow_run_id"]) == ("blocked", "data", None)
    assert any("expect_column_to_exist" in r and "'duration'" in r for r in summary["reasons"])
    failed = [c for c in summary["checks"] if not c["passed"]]
    assert {"expect_column_to_exist[duration]", "expect_column_values_to_be_in_type_list[duration]"} <= {
        c["name"] for c in failed
    }
    assert setup.champion_version() == champion

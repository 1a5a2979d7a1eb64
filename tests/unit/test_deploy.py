import json

import mlflow
import pandas as pd
import pytest

from gated_training.config import GateThresholds
from gated_training.errors import RegistryError
from gated_training.registry.store import ModelRegistry
from gated_training.steps.deploy_model import deploy_model
from gated_training.steps.evaluate_model import evaluate_model
from tests.builders import train_candidate
from tests.conftest import synthetic_frame


@pytest.fixture
def candidate(tmp_path):
    return train_candidate(tmp_path / "c", synthetic_frame(400, seed=8))


def gate(candidate, registry_uri, thresholds=GateThresholds(min_accuracy=0.5, max_overfit_gap=0.5)):
    evaluate_model(
        model_path=candidate.path("model.joblib"),
        test_path=candidate.path("test.parquet"),
        training_report_path=candidate.path("training.json"),
        target="label",
        thresholds=thresholds,
        registry_uri=registry_uri,
        model_name="m",
        decision_out=candidate.path("gate.json"),
        report_out=candidate.path("gate.md"),
    )
    return candidate.path("gate.json")


def deploy(candidate, registry_uri, gate_path):
    return deploy_model(
        model_path=candidate.path("model.joblib"),
        test_path=candidate.path("test.parquet"),
        feature_metadata_path=candidate.path("meta.json"),
        training_report_path=candidate.path("training.json"),
        gate_decision_path=gate_path,
        target="label",
        registry_uri=registry_uri,
        model_name="m",
        data_sha256="d" * 64,
        kfp_run_id="run-7",
        deployment_out=candidate.path("deployment.json"),
        train_path=candidate.path("train.parquet"),
    )


def test_deploy_publishes_verifies_promotes_and_mirrors(candidate, tmp_path):
    registry_uri = str(tmp_path / "registry")
    outcome = deploy(candidate, registry_uri, gate(candidate, registry_uri))
    assert outcome.promoted and outcome.mlflow_mirror == "synced" and outcome.previous_champion is None
    registry = ModelRegistry(registry_uri, "m")
    champion = registry.champion()
    assert champion.version == outcome.version
    _, manifest = registry.load_verified(champion.version, champion.manifest_sha256)
    assert manifest["data_sha256"] == "d" * 64 and manifest["kfp_run_id"] == "run-7"
    assert manifest["mlflow_run_id"] == candidate.training.mlflow_run_id and manifest["gate"]["decision"] == "deploy"
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
    }
    assert manifest["serving"]["folder"] == "serve" and manifest["serving"]["content_type"] == "pd"
    assert manifest["serving"]["verified_with"]["scikit-learn"] == __import__("sklearn").__version__
    _, contents = registry.verified_files(champion.version, champion.manifest_sha256)
    profile = json.loads(contents["reference_profile.json"])
    assert set(profile["features"]) == {"x1", "x2", "colour", "flag"}  # the target is left out
    assert profile["features"]["x1"]["kind"] == "numeric" and profile["features"]["colour"]["kind"] == "categorical"
    assert sum(profile["predictions"].values()) == len(pd.read_parquet(candidate.path("test.parquet")))
    assert manifest["pipeline"]["package_version"] and "image" in manifest["pipeline"]
    assert manifest["mlflow"]["model_uri"] == candidate.training.mlflow_model_uri
    assert manifest["gate"]["checks"] and manifest["gate"]["champion"] is None and manifest["created_by"]
    (event,) = champion.pointer["history"]
    assert (event["version"], event["action"], event["kfp_run_id"]) == (outcome.version, "promote", "run-7")
    client = mlflow.MlflowClient(tracking_uri=candidate.tracking_uri, registry_uri=candidate.tracking_uri)
    aliased = client.get_model_version_by_alias("m", "champion")
    assert str(aliased.version) == outcome.mlflow_model_version and aliased.tags["registry_version"] == outcome.version
    assert json.loads(open(candidate.path("deployment.json")).read())["version"] == outcome.version


def test_deploy_refuses_a_blocked_decision(candidate, tmp_path):
    registry_uri = str(tmp_path / "registry")
    blocked = gate(candidate, registry_uri, GateThresholds(min_accuracy=1.0))
    with pytest.raises(RegistryError, match="refusing to deploy: the gate decision is 'block'"):
        deploy(candidate, registry_uri, blocked)
    assert ModelRegistry(registry_uri, "m").versions() == []


def test_champion_changed_after_gating_blocks_without_losing_it(candidate, tmp_path):
    registry_uri = str(tmp_path / "registry")
    gate_path = gate(candidate, registry_uri)  # gated against "no champion"
    winner = deploy(candidate, registry_uri, gate(candidate, registry_uri))  # another run promotes meanwhile
    late = deploy(candidate, registry_uri, gate_path)
    assert not late.promoted and late.blocked_reason.startswith("champion_changed")
    assert ModelRegistry(registry_uri, "m").champion().version == winner.version


def test_mlflow_down_at_deploy_leaves_the_mirror_pending(candidate, tmp_path):
    registry_uri = str(tmp_path / "registry")
    gate_path = gate(candidate, registry_uri)
    training = json.loads(open(candidate.path("training.json")).read())
    training["tracking_uri"] = "http://127.0.0.1:9"
    open(candidate.path("training.json"), "w").write(json.dumps(training))
    outcome = deploy(candidate, registry_uri, gate_path)
    assert outcome.promoted  # the registry pointer is the source of truth
    assert outcome.mlflow_mirror.startswith("pending: MLflow at http://127.0.0.1:9: registering the champion failed")

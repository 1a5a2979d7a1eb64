"""A Spark step on the cluster, end to end on this machine: the step function, configured as
``pipelines/cluster.py`` configures its pod, submits a SparkApplication to the loopback Kubernetes API; the
stand-in operator "runs the driver pod" (``component_images/spark_driver.py`` with the application's own
arguments and plain environment, on local[2]) and reports COMPLETED or FAILED with the operator's words; the
step reads the result and the outputs back from the staging prefix. Each outcome equals the pandas engine's in
this process, and nothing stays staged or created."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from gated_training.config import DriftPolicy
from gated_training.errors import DataError
from gated_training.spark import remote
from gated_training.spark.application import SparkApplicationError
from gated_training.steps.check_drift import check_drift
from gated_training.steps.validate_data import validate_data
from tests.conftest import REPO_ROOT, SAMPLE_DATA, SAMPLE_SUITE
from tests.registry_helpers import registry_bytes
from tests.spark_stand_in import spark_cluster

pytestmark = pytest.mark.spark
DRIVER = REPO_ROOT / "component_images" / "spark_driver.py"


def run_driver_pod(application: dict) -> int:
    """What the driver pod does: the image's main file with the application's arguments and plain env."""
    spec = application["spec"]
    assert spec["mainApplicationFile"] == "local:///opt/gated-training/spark_driver.py"
    env = {**os.environ, **{e["name"]: e["value"] for e in spec["driver"]["env"] if "value" in e}}
    for name in [n for n in env if n.startswith("GATED_TRAINING_SPARK_") and n != remote.DRIVER_ENV]:
        del env[name]  # the driver pod has none of the component's Spark settings
    return subprocess.run([sys.executable, str(DRIVER), *spec["arguments"]], env=env, timeout=600).returncode


@pytest.fixture()
def cluster(tmp_path, monkeypatch):
    """The step's pod as compiled with SPARK_IMAGE: its Spark settings point at the stand-in's API."""
    with spark_cluster(monkeypatch, tmp_path / "staging") as api:
        api.spark_driver = run_driver_pod
        yield api, tmp_path / "staging"


def outputs(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    return {
        "dataset_out": str(folder / "dataset"),
        "report_out": str(folder / "report.json"),
        "data_docs_out": str(folder / "docs.html"),
    }


def validate(data, out, engine):
    return validate_data(
        data_uri=str(data),
        suite_uri=str(SAMPLE_SUITE),
        target="risk",
        min_quality_score=0.9,
        engine=engine,
        **out,
    )


@pytest.mark.slow  # make test-slow (make test-all), not CI's make test-spark: see tests/spark/conftest.py
def test_validate_data_in_a_spark_application_ends_as_in_the_steps_own_process(spark, cluster, tmp_path, monkeypatch):
    api, staging = cluster
    on_cluster = validate(SAMPLE_DATA, outputs(tmp_path, "remote"), "spark")
    with monkeypatch.context() as local:
        local.delenv(remote.IMAGE_ENV)
        in_process = validate(SAMPLE_DATA, outputs(tmp_path, "local"), "spark")
        on_pandas = validate(SAMPLE_DATA, outputs(tmp_path, "pandas"), "pandas")
    assert on_cluster.passed and on_cluster.to_json() == in_process.to_json()
    assert on_cluster.data_sha256 == on_pandas.data_sha256
    assert [c.passed for c in on_cluster.checks] == [c.passed for c in on_pandas.checks]
    remote_rows = pd.read_parquet(tmp_path / "remote" / "dataset")
    pd.testing.assert_frame_equal(remote_rows, pd.read_parquet(tmp_path / "local" / "dataset"))
    created = [r for r in api.requests if r["method"] == "POST"]
    assert len(created) == 1 and created[0]["body"]["spec"]["arguments"][0] == "validate-data"
    assert api.objects == {} and len(api.deleted) == 1  # deleted once done
    assert not any(path.is_file() for path in staging.rglob("*"))  # nothing stays staged


def test_check_drift_in_a_spark_application_reads_the_champion_and_decides_as_on_pandas(
    cluster, sample_champion, tmp_path, monkeypatch
):
    api, _ = cluster
    monkeypatch.setenv("GATED_TRAINING_ALLOW_POD_LOCAL_STATE", "1")
    before = registry_bytes(sample_champion.registry)
    validated = outputs(tmp_path, "validated")
    with monkeypatch.context() as local:
        local.delenv(remote.IMAGE_ENV)
        validate(SAMPLE_DATA, validated, "pandas")
    results = {}
    for engine in ("spark", "pandas"):
        with monkeypatch.context() as local:
            if engine == "pandas":
                local.delenv(remote.IMAGE_ENV)
            results[engine] = check_drift(
                dataset_path=validated["dataset_out"],
                validation_report_path=validated["report_out"],
                target="risk",
                registry_uri=str(sample_champion.registry),
                model_name="tabular-classifier",
                policy=DriftPolicy(),
                report_out=str(tmp_path / f"drift-{engine}.json"),
                html_out=str(tmp_path / f"drift-{engine}.html"),
                engine=engine,
                dataset_uri=validated["dataset_out"],
            )
    assert results["spark"].champion is not None
    assert results["spark"].to_json() == results["pandas"].to_json()
    env = {e["name"]: e.get("value") for e in api.requests[0]["body"]["spec"]["driver"]["env"]}
    assert env["GATED_TRAINING_ALLOW_POD_LOCAL_STATE"] == "1" and env[remote.DRIVER_ENV] == "1"
    assert registry_bytes(sample_champion.registry) == before


@pytest.mark.slow  # make test-slow (make test-all), not CI's make test-spark: see tests/spark/conftest.py
def test_engineer_features_in_a_spark_application_writes_what_the_steps_own_process_writes(
    spark, cluster, tmp_path, monkeypatch
):
    import joblib

    from gated_training.config import FeatureSettings, SplitSettings
    from gated_training.steps.engineer_features import engineer_features

    validated = outputs(tmp_path, "validated")
    with monkeypatch.context() as local:
        local.delenv(remote.IMAGE_ENV)
        validate(SAMPLE_DATA, validated, "pandas")
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"ignored_columns": ["purpose"]}))  # the schema contract dropped a column
    results = {}
    for where in ("remote", "local"):
        out = tmp_path / f"features-{where}"
        out.mkdir()
        with monkeypatch.context() as local:
            if where == "local":
                local.delenv(remote.IMAGE_ENV)
            results[where] = engineer_features(
                dataset_path=validated["dataset_out"],
                target="risk",
                feature_settings=FeatureSettings(),
                split_settings=SplitSettings(),
                train_out=str(out / "train"),
                test_out=str(out / "test"),
                preprocessor_out=str(out / "preprocessor.joblib"),
                metadata_out=str(out / "metadata.json"),
                drift_report_path=str(drift),
                engine="spark",
            )
    assert results["remote"] == results["local"] and results["remote"].train_rows > 600
    remote_metadata = json.loads((tmp_path / "features-remote" / "metadata.json").read_text())
    assert remote_metadata == json.loads((tmp_path / "features-local" / "metadata.json").read_text())
    assert remote_metadata["dropped_columns"] == ["purpose"]
    for side in ("train", "test"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "features-remote" / side), pd.read_parquet(tmp_path / "features-local" / side)
        )
    test_rows = pd.read_parquet(tmp_path / "features-local" / "test").drop(columns=["risk"])
    fitted = [joblib.load(tmp_path / f"features-{where}" / "preprocessor.joblib") for where in ("remote", "local")]
    assert (fitted[0].transform(test_rows) == fitted[1].transform(test_rows)).all()


@pytest.mark.slow  # make test-slow (make test-all), not CI's make test-spark: see tests/spark/conftest.py
def test_train_model_in_a_spark_application_logs_to_mlflow_and_returns_the_steps_own_model(
    spark, cluster, tmp_path, monkeypatch
):
    """The driver trains with xgboost.spark, logs the run to MLflow itself (the tracking URI the component resolved)
    and writes the model, the report and the importances the component copies back: with one worker the same booster
    as the step's own process, and a report built only from the training report's shape."""
    import dataclasses

    import joblib
    import mlflow

    from gated_training.config import FeatureSettings, ModelSettings, SplitSettings
    from gated_training.spark.training import WORKERS_ENV
    from gated_training.steps.engineer_features import engineer_features
    from gated_training.steps.train_model import train_model

    monkeypatch.setenv(WORKERS_ENV, "1")
    features = tmp_path / "features"
    features.mkdir()
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"decision": "first_run", "drift_action": "block", "drifted": False}))
    with monkeypatch.context() as local:
        local.delenv(remote.IMAGE_ENV)
        engineer_features(
            dataset_path=_sample_parquet(tmp_path),
            target="risk",
            feature_settings=FeatureSettings(),
            split_settings=SplitSettings(),
            train_out=str(features / "train"),
            test_out=str(features / "test"),
            preprocessor_out=str(features / "preprocessor.joblib"),
            metadata_out=str(features / "metadata.json"),
            engine="spark",
        )
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    results = {}
    for where in ("remote", "local"):
        out = tmp_path / f"train-{where}"
        out.mkdir()
        with monkeypatch.context() as local:
            if where == "local":
                local.delenv(remote.IMAGE_ENV)
            results[where] = train_model(
                train_path=str(features / "train"),
                test_path=str(features / "test"),
                preprocessor_path=str(features / "preprocessor.joblib"),
                feature_metadata_path=str(features / "metadata.json"),
                target="risk",
                settings=ModelSettings(estimator="xgboost", n_estimators=30, max_depth=3, cv_folds=3),
                tracking_uri=tracking_uri,
                experiment="remote",
                data_sha256="b" * 64,
                kfp_run_id=f"run-{where}",
                model_out=str(out / "model.joblib"),
                report_out=str(out / "training.json"),
                importances_out=str(out / "importances.json"),
                drift_report_path=str(drift),
                engine="spark",
            )
    differs = {"mlflow_run_id", "mlflow_model_uri"}
    assert {k: v for k, v in dataclasses.asdict(results["remote"]).items() if k not in differs} == {
        k: v for k, v in dataclasses.asdict(results["local"]).items() if k not in differs
    }
    models = [joblib.load(tmp_path / f"train-{where}" / "model.joblib") for where in ("remote", "local")]
    assert models[0].named_steps["model"].booster_raw_ == models[1].named_steps["model"].booster_raw_
    for name in ("importances.json",):
        assert (tmp_path / "train-remote" / name).read_text() == (tmp_path / "train-local" / name).read_text()
    run = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(results["remote"].mlflow_run_id)
    assert run.data.tags["kfp_run_id"] == "run-remote" and run.data.params["estimator"] == "xgboost"
    assert run.data.tags["drift_decision"] == "first_run"
    assert not any(cluster[1].rglob("request.json"))  # the staging prefix is cleaned


def _sample_parquet(tmp_path) -> str:
    path = tmp_path / "sample.parquet"
    pd.read_csv(SAMPLE_DATA).to_parquet(path, index=False)
    return str(path)


def test_a_batch_the_driver_cannot_read_fails_the_step_with_the_pandas_engines_words(cluster, tmp_path, monkeypatch):
    api, staging = cluster
    broken = REPO_ROOT / "tests" / "bad_inputs" / "non_utf8.csv"
    with pytest.raises(DataError) as on_cluster:
        validate(broken, outputs(tmp_path, "spark"), "spark")
    with monkeypatch.context() as local, pytest.raises(DataError) as on_pandas:
        local.delenv(remote.IMAGE_ENV)
        validate(broken, outputs(tmp_path, "pandas"), "pandas")
    assert str(on_cluster.value) == str(on_pandas.value)
    assert "not valid UTF-8 at byte 364 (line 8)" in str(on_cluster.value)
    assert api.driver_exits and set(api.driver_exits.values()) == {1} and api.objects == {}
    assert not (tmp_path / "spark" / "report.json").exists()  # no output of a failed step
    assert not any(path.is_file() for path in staging.rglob("*"))  # nor its copy of the batch in the bucket


def test_a_driver_killed_before_it_answered_fails_the_step_with_the_operators_reason(cluster, tmp_path):
    api, staging = cluster
    api.spark_driver = lambda application: 137  # OOM-killed: no result.json
    with pytest.raises(SparkApplicationError, match="ended FAILED: driver container failed with ExitCode: 137"):
        validate(SAMPLE_DATA, outputs(tmp_path, "spark"), "spark")
    assert api.objects == {} and not any(path.is_file() for path in staging.rglob("*"))


@pytest.mark.slow  # make test-slow (make test-all), not CI's make test-spark: see tests/spark/conftest.py
def test_evaluate_model_in_a_spark_application_decides_as_the_steps_own_process(
    spark, cluster, sample_champion, sample_candidate, tmp_path, monkeypatch
):
    """The driver loads the champion verified, scores both models in Spark, runs the gate and puts its record on the
    MLflow run; the component builds the decision only from a record whose verdict follows from its checks, and it
    is the step's own process's decision, bit for bit. The registry is byte-identical."""
    import shutil

    from gated_training.config import GateThresholds
    from gated_training.steps.evaluate_model import evaluate_model
    from tests.spark.test_evaluation_parity import LENIENT

    monkeypatch.setenv("GATED_TRAINING_ALLOW_POD_LOCAL_STATE", "1")
    registry = tmp_path / "registry"
    shutil.copytree(sample_champion.registry, registry)
    before = registry_bytes(registry)
    paths = sample_candidate
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"decision": "no_drift", "drift_action": "block", "drifted": False}))
    page = tmp_path / "drift.html"
    page.write_text("<html></html>")
    written = {}
    for where in ("remote", "local"):
        out = tmp_path / f"gate-{where}"
        out.mkdir()
        with monkeypatch.context() as local:
            if where == "local":
                local.delenv(remote.IMAGE_ENV)
            decision = evaluate_model(
                model_path=paths["model"],
                test_path=paths["test"],
                training_report_path=paths["training"],
                target="risk",
                thresholds=GateThresholds(**LENIENT, slice_by="housing"),
                registry_uri=str(registry),
                model_name="tabular-classifier",
                decision_out=str(out / "decision.json"),
                report_out=str(out / "report.md"),
                drift_report_path=str(drift),
                drift_html_path=str(page),
                feature_metadata_path=paths["metadata.json"],
                engine="spark",
            )
        written[where] = json.loads((out / "decision.json").read_text())
        assert decision.to_json() == written[where]
        assert (out / "report.md").read_text().startswith("# Model gate")
    assert written["remote"] == written["local"] and written["remote"]["champion"]["comparison"]["rows"] > 0
    assert (tmp_path / "gate-remote" / "report.md").read_text() == (tmp_path / "gate-local" / "report.md").read_text()
    api, staging = cluster
    assert api.objects == {} and not any(path.is_file() for path in staging.rglob("*"))
    assert registry_bytes(registry) == before

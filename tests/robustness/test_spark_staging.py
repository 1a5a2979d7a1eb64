"""Hostile staging on the cluster: a Spark step reads its driver's result and records back from the bucket, and
someone (or something) else may have written there. check-drift, configured as the compiled pod is, submits to
the loopback Kubernetes API; the stand-in operator's "driver" forges what lands in the staging prefix. Every
case fails the step with a message that names what is wrong, writes no record, leaves no application behind,
and the registry (whose champion check-drift reads) is byte-identical. No JVM: the forger replaces the driver."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gated_training.config import DriftPolicy
from gated_training.errors import DataError, GatedTrainingError, RegistryError, TrackingError
from gated_training.spark import remote
from gated_training.spark.application import SparkApplicationError
from gated_training.steps.check_drift import check_drift
from gated_training.steps.validate_data import validate_data
from tests.conftest import SAMPLE_DATA, SAMPLE_SUITE
from tests.registry_helpers import registry_bytes
from tests.spark_stand_in import spark_cluster

RESULT_OK = {"format": 1, "step": "check-drift", "ok": True}
REPORT_OK = {
    "decision": "train",
    "reason": None,
    "drift_action": "warn",
    "drifted": False,
    "deploy_allowed": True,
    "reasons": [],
    "notes": [],
    "champion": None,
    "data_sha256": "x",
}


def staged_files(staging: Path) -> list[str]:
    """What is left in the staging prefix: nothing, once a step has ended, failed or not."""
    return sorted(str(path.relative_to(staging)) for path in staging.rglob("*") if path.is_file())


def forger(result, report=None):
    """A driver that writes ``result`` (bytes or a document) and, when given, ``report`` as the drift record."""

    def driver(application: dict) -> int:
        request = json.loads(Path(application["spec"]["arguments"][1]).read_text())
        prefix = Path(request["prefix"])
        raw = result if isinstance(result, bytes) else json.dumps(result).encode()
        (prefix / "result.json").write_bytes(raw)
        if report is not None:
            (prefix / "outputs").mkdir(exist_ok=True)
            (prefix / "outputs" / "report_out").write_bytes(
                report if isinstance(report, bytes) else json.dumps(report).encode()
            )
            (prefix / "outputs" / "html_out").write_text("<p>forged</p>")
        return 0

    return driver


CASES = [
    (
        {**RESULT_OK, "extra": "<script>"},
        None,
        SparkApplicationError,
        "the driver's result is not of the expected shape",
    ),
    ({**RESULT_OK, "step": "validate-data"}, None, SparkApplicationError, "not of the expected shape"),
    (b"{not json", None, SparkApplicationError, "the driver's result is not JSON"),
    (b" " * (remote.MAX_RESULT_BYTES + 1), None, SparkApplicationError, "not readable within 1048576 bytes"),
    (RESULT_OK, None, SparkApplicationError, "the driver reported success, but this output is missing"),
    (
        RESULT_OK,
        {**REPORT_OK, "decision": "deploy"},
        SparkApplicationError,
        "the driver's record is not of the expected shape (decision 'deploy')",
    ),
    (RESULT_OK, {**REPORT_OK, "verdict": "train"}, SparkApplicationError, "unexpected keyword argument 'verdict'"),
    (RESULT_OK, b"[1, 2]", SparkApplicationError, "a JSON list, not an object"),
    (
        {"format": 1, "step": "check-drift", "ok": False, "error": {"kind": "DataError", "message": "x.parquet: gone"}},
        None,
        DataError,
        "x.parquet: gone",
    ),
    (
        {"format": 1, "step": "check-drift", "ok": False, "error": {"kind": "SystemExit", "message": "rm -rf"}},
        None,
        GatedTrainingError,
        "SystemExit: rm -rf",
    ),
]


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    out = tmp_path_factory.mktemp("validated")
    paths = {
        "dataset_out": str(out / "batch.parquet"),
        "report_out": str(out / "report.json"),
        "data_docs_out": str(out / "page.html"),
    }
    validate_data(data_uri=str(SAMPLE_DATA), suite_uri=str(SAMPLE_SUITE), target="risk", min_quality_score=0.9, **paths)
    return paths


@pytest.mark.parametrize(("result", "report", "error", "words"), CASES)
def test_a_forged_staging_prefix_fails_the_step_by_name_and_the_registry_is_untouched(
    sample_champion, validated, tmp_path, monkeypatch, result, report, error, words
):
    monkeypatch.setenv("GATED_TRAINING_ALLOW_POD_LOCAL_STATE", "1")
    before = registry_bytes(sample_champion.registry)
    with spark_cluster(monkeypatch, tmp_path / "staging") as api:
        api.spark_driver = forger(result, report)
        with pytest.raises(error) as raised:
            check_drift(
                dataset_path=validated["dataset_out"],
                validation_report_path=validated["report_out"],
                target="risk",
                registry_uri=str(sample_champion.registry),
                model_name="tabular-classifier",
                policy=DriftPolicy(),
                report_out=str(tmp_path / "drift.json"),
                html_out=str(tmp_path / "drift.html"),
                engine="spark",
            )
        assert type(raised.value) is error and words in str(raised.value), raised.value
        assert api.objects == {} and len(api.deleted) == 1
        assert staged_files(tmp_path / "staging") == []  # the failed step's staging prefix is deleted too
    if report is None:
        assert not (tmp_path / "drift.json").exists()
    assert registry_bytes(sample_champion.registry) == before
    assert not os.environ.get(remote.DRIVER_ENV)


TRAINING_OK = {
    "mlflow_run_id": "r",
    "mlflow_model_uri": "models:/m-r",
    "tracking_uri": "http://mlflow",
    "cv_accuracy_mean": 0.8,
    "cv_accuracy_std": 0.01,
    "cv_rows": 700,
    "train": {"accuracy": 0.9},
    "test": {"accuracy": 0.8},
    "overfit_gap": 0.1,
    "pair_feature_scores": [],
    "pair_scored_rows": 300,
}


def training_forger(result: dict, outputs: dict[str, bytes]):
    """A train-model driver that writes ``result`` and the given outputs (model_out, report_out, importances_out)."""

    def driver(application: dict) -> int:
        request = json.loads(Path(application["spec"]["arguments"][1]).read_text())
        prefix = Path(request["prefix"])
        (prefix / "result.json").write_text(json.dumps(result))
        (prefix / "outputs").mkdir(exist_ok=True)
        for name, raw in outputs.items():
            (prefix / "outputs" / name).write_bytes(raw)
        return 0

    return driver


TRAINING_RESULT_OK = {"format": 1, "step": "train-model", "ok": True}
FORGED_MODEL = b"\x80\x04cos\nsystem\n."  # a pickle that would run code: it is copied, never loaded by the step


def _training_outputs(report: object) -> dict[str, bytes]:
    raw = report if isinstance(report, bytes) else json.dumps(report).encode()
    return {"model_out": FORGED_MODEL, "report_out": raw, "importances_out": b"[]"}


TRAINING_CASES = [
    (
        TRAINING_RESULT_OK,
        _training_outputs({**TRAINING_OK, "cv_accuracy_mean": float("nan")}),
        SparkApplicationError,
        "cv_accuracy_mean: nan is not a finite number",
    ),
    (
        TRAINING_RESULT_OK,
        _training_outputs({**TRAINING_OK, "deploy": True}),
        SparkApplicationError,
        "fields ['deploy'] differ from the training report's",
    ),
    (
        TRAINING_RESULT_OK,
        _training_outputs({**TRAINING_OK, "test": {"accuracy": "1.0"}}),
        SparkApplicationError,
        "test.accuracy: '1.0' is not a finite number",
    ),
    (
        TRAINING_RESULT_OK,
        {"model_out": FORGED_MODEL},
        SparkApplicationError,
        "the driver reported success, but this output is missing",
    ),
    (
        {"format": 1, "step": "train-model", "ok": False, "error": {"kind": "TrackingError", "message": "MLflow down"}},
        {},
        TrackingError,
        "MLflow down",
    ),
]


@pytest.mark.parametrize(("result", "outputs", "error", "words"), TRAINING_CASES)
def test_a_forged_training_report_fails_train_model_by_name_and_nothing_is_unpickled(
    tmp_path, monkeypatch, result, outputs, error, words
):
    """train-model on the cluster builds its outcome only from a report of the training report's shape; the model
    the forger wrote is a pickle that would run code, and the step never loads it (evaluate-model runs only after
    a train-model that succeeded, and then from the verified chain of KFP artifacts)."""
    from gated_training.config import ModelSettings
    from gated_training.steps.train_model import train_model

    inputs = {name: tmp_path / name for name in ("preprocessor.joblib", "metadata.json", "drift.json")}
    for path in inputs.values():
        path.write_text("{}")
    with spark_cluster(monkeypatch, tmp_path / "staging") as api:
        api.spark_driver = training_forger(result, outputs)
        with pytest.raises(error) as raised:
            train_model(
                train_path=str(tmp_path / "train"),
                test_path=str(tmp_path / "test"),
                preprocessor_path=str(inputs["preprocessor.joblib"]),
                feature_metadata_path=str(inputs["metadata.json"]),
                target="risk",
                settings=ModelSettings(estimator="xgboost"),
                tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                experiment="forged",
                data_sha256="c" * 64,
                kfp_run_id="run",
                model_out=str(tmp_path / "model.joblib"),
                report_out=str(tmp_path / "training.json"),
                importances_out=str(tmp_path / "importances.json"),
                drift_report_path=str(inputs["drift.json"]),
                engine="spark",
            )
        assert type(raised.value) is error and words in str(raised.value), raised.value
        assert api.objects == {} and len(api.deleted) == 1
        assert staged_files(tmp_path / "staging") == []  # the failed step's staging prefix is deleted too
    assert not os.environ.get(remote.DRIVER_ENV)


def _gate_record(**changes) -> dict:
    """A gate decision's record of the right shape: one passing check, a deploy."""
    record = {
        "decision": "deploy",
        "reasons": [],
        "checks": [
            {
                "name": "min_test_rows",
                "value": 200.0,
                "threshold": 100.0,
                "comparison": ">=",
                "passed": True,
                "detail": "",
                "severity": "critical",
                "evidence": None,
            }
        ],
        "candidate": {"metrics": {"accuracy": 0.8}, "overfit_gap": 0.05, "test_rows": 200},
        "champion": None,
        "thresholds": {},
        "scores": {"labels": [0, 1], "confusion_matrix": [[50, 10], [30, 110]], "roc_curve": None},
        "prediction_drift": None,
        "drift": None,
        "warnings": [],
        "baseline": None,
    }
    record.update(changes)
    return record


GATE_RESULT_OK = {"format": 1, "step": "evaluate-model", "ok": True}
BLOCKING = {**_gate_record()["checks"][0], "name": "min_accuracy", "value": 0.4, "threshold": 0.7, "passed": False}


def _gate_outputs(record: object) -> dict[str, bytes]:
    raw = record if isinstance(record, bytes) else json.dumps(record).encode()
    return {"decision_out": raw, "report_out": b"# Model gate: **DEPLOY**\n"}


GATE_CASES = [
    (  # the one forgery that matters: deploy over a blocking check
        GATE_RESULT_OK,
        _gate_outputs(_gate_record(checks=[BLOCKING])),
        SparkApplicationError,
        "decision 'deploy' with 0 reason(s) does not follow from its checks (block, 1 blocking)",
    ),
    (
        GATE_RESULT_OK,
        _gate_outputs(_gate_record(approved=True)),
        SparkApplicationError,
        "fields ['approved'] differ from a gate decision's",
    ),
    (
        GATE_RESULT_OK,
        _gate_outputs(_gate_record(candidate={"metrics": {"accuracy": float("nan")}, "overfit_gap": 0.0})),
        SparkApplicationError,
        "candidate.metrics.accuracy: nan is not a finite number",
    ),
    (
        GATE_RESULT_OK,
        _gate_outputs(_gate_record(checks=[{**BLOCKING, "passed": "no", "severity": "critical"}])),
        SparkApplicationError,
        "check 'min_accuracy': passed is not true or false",
    ),
    (
        GATE_RESULT_OK,
        _gate_outputs(_gate_record(checks=[{**BLOCKING, "severity": "advisory"}])),
        SparkApplicationError,
        "comparison or severity of an unknown kind",
    ),
    (
        GATE_RESULT_OK,
        _gate_outputs(_gate_record(scores={"labels": [0, 1], "confusion_matrix": [[1, 2, 3]], "roc_curve": None})),
        SparkApplicationError,
        "scores: not labels with a square confusion matrix of counts",
    ),
    (GATE_RESULT_OK, _gate_outputs(b"[]"), SparkApplicationError, "a JSON list, not an object"),
    (
        GATE_RESULT_OK,
        {"report_out": b"# Model gate"},
        SparkApplicationError,
        "the driver reported success, but this output is missing",
    ),
    (
        {
            "format": 1,
            "step": "evaluate-model",
            "ok": False,
            "error": {"kind": "RegistryError", "message": "the champion could not be loaded for comparison"},
        },
        {},
        RegistryError,
        "the champion could not be loaded for comparison",
    ),
]


@pytest.mark.parametrize(("result", "outputs", "error", "words"), GATE_CASES)
def test_a_forged_gate_decision_fails_evaluate_model_by_name_and_the_registry_is_untouched(
    tmp_path, monkeypatch, result, outputs, error, words
):
    """evaluate-model on the cluster returns a decision only from a record of a decision's shape whose verdict
    follows from its own checks: a staged "deploy" over a blocking check never reaches the deploy condition."""
    from gated_training.config import GateThresholds
    from gated_training.steps.evaluate_model import evaluate_model

    registry = tmp_path / "registry"
    registry.mkdir()
    before = registry_bytes(registry)
    inputs = {name: tmp_path / name for name in ("model.joblib", "training.json", "drift.json", "drift.html", "m.json")}
    for path in inputs.values():
        path.write_text("{}")
    with spark_cluster(monkeypatch, tmp_path / "staging") as api:
        api.spark_driver = training_forger(result, outputs)
        with pytest.raises(error) as raised:
            evaluate_model(
                model_path=str(inputs["model.joblib"]),
                test_path=str(tmp_path / "test"),
                training_report_path=str(inputs["training.json"]),
                target="risk",
                thresholds=GateThresholds(),
                registry_uri=str(registry),
                model_name="m",
                decision_out=str(tmp_path / "decision.json"),
                report_out=str(tmp_path / "report.md"),
                drift_report_path=str(inputs["drift.json"]),
                drift_html_path=str(inputs["drift.html"]),
                feature_metadata_path=str(inputs["m.json"]),
                engine="spark",
            )
        assert type(raised.value) is error and words in str(raised.value), raised.value
        assert api.objects == {} and len(api.deleted) == 1
        assert staged_files(tmp_path / "staging") == []  # the failed step's staging prefix is deleted too
    assert registry_bytes(registry) == before


def test_optional_inputs_left_out_are_not_sent_and_the_driver_accepts_the_request(tmp_path, monkeypatch):
    """evaluate-model without the drift record, its page and the feature metadata (all optional, as in-process):
    the request names only the inputs given, only those are staged, and the driver's strict reader accepts it."""
    from gated_training.config import GateThresholds
    from gated_training.steps import spark_driver
    from gated_training.steps.evaluate_model import evaluate_model

    seen = {}

    def driver(application: dict) -> int:
        request_uri = application["spec"]["arguments"][1]
        seen["request"] = spark_driver.read_request("evaluate-model", request_uri)
        seen["staged"] = sorted(p.name for p in (Path(request_uri).parent / "inputs").iterdir())
        result = {"format": 1, "step": "evaluate-model", "ok": False, "error": {"kind": "DataError", "message": "x"}}
        (Path(request_uri).parent / "result.json").write_text(json.dumps(result))
        return 0

    for name in ("model.joblib", "training.json"):
        (tmp_path / name).write_text("{}")
    with spark_cluster(monkeypatch, tmp_path / "staging") as api:
        api.spark_driver = driver
        with pytest.raises(DataError, match="x"):
            evaluate_model(
                model_path=str(tmp_path / "model.joblib"),
                test_path=str(tmp_path / "test"),
                training_report_path=str(tmp_path / "training.json"),
                target="risk",
                thresholds=GateThresholds(),
                registry_uri=str(tmp_path / "registry"),
                model_name="m",
                decision_out=str(tmp_path / "d.json"),
                report_out=str(tmp_path / "r.md"),
                engine="spark",
            )
        assert api.objects == {} and len(api.deleted) == 1
        assert staged_files(tmp_path / "staging") == []  # the failed step's staging prefix is deleted too
    assert seen["request"]["inputs"] == ["model_path", "training_report_path"]
    assert seen["staged"] == ["model_path", "training_report_path"]

"""deploy-model: publish a signed, immutable version, smoke-test it, move the champion pointer, mirror to MLflow.

Runs only in the branch where both gates passed. The pointer moves only after the version
loads back with verified hashes and predicts what the candidate predicted.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from gated_training import __version__, logs
from gated_training.data import detached_head, json_safe, read_parquet, split_features_target
from gated_training.decisions import ModelGate
from gated_training.drift import profile_frame
from gated_training.errors import RegistryError
from gated_training.registry import (
    FEATURE_METADATA_FILE,
    REFERENCE_PROFILE_FILE,
    SUITE_FILE,
    ChampionChangedError,
    ModelRegistry,
    fitted_model,
    smoke_files,
    smoke_test,
)
from gated_training.serving import serving_files, serving_record
from gated_training.tracking import mirror_to_mlflow, tag_outcome, without_credentials
from gated_training.validation import suite_sha256

SMOKE_TEST_ROWS = 20
PREDICT_CHUNK_ROWS = 50_000


@dataclass(frozen=True, kw_only=True)
class DeploymentOutcome:
    promoted: bool
    version: str
    version_uri: str
    blocked_reason: str | None
    previous_champion: str | None
    mlflow_model_version: str | None
    mlflow_mirror: str  # "synced" or "pending: <why>"

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def version_description(version: str, manifest_sha256: str, gate: dict[str, Any]) -> str:
    """The MLflow model version's description: which registry version it is and the gate it passed."""
    lines = [
        f"gated-training registry version {version} (manifest SHA-256 {manifest_sha256}).",
        f"Model gate: {gate['decision']}.",
    ]
    from gated_training.reports import number_or_dash

    for check in gate["checks"]:
        threshold = (
            "" if check.get("threshold") is None else f" {check['comparison']} {number_or_dash(check['threshold'])}"
        )
        state = "pass" if check["passed"] else ("warning" if check.get("severity") == "warning" else "FAIL")
        lines.append(f"- {check['name']}: {number_or_dash(check.get('value'))}{threshold}: {state}")
    drift = gate.get("drift") or {}
    if drift.get("drifted"):
        lines.append(
            f"Deployed over drift ({drift.get('drift_action')}): {', '.join(drift.get('drifted_features') or [])}."
        )
    champion = gate.get("champion") or {}
    lines.append(f"Compared against champion {champion['version']}." if champion.get("version") else "First champion.")
    return "\n".join(lines)


def passed_suite(validation: dict[str, Any]) -> bytes:
    """The suite the data gate ran, read again and held to the digest the gate recorded: the version keeps it, so
    monitoring checks live calls against the very expectations this model's data met."""
    raw, digest = suite_sha256(str(validation["suite_uri"]))
    if digest != validation.get("suite_sha256"):
        raise RegistryError(
            f"expectation suite {validation['suite_uri']} changed during the run (SHA-256 {digest}, the data gate "
            f"ran {validation.get('suite_sha256')}); not deploying a version whose suite no one checked"
        )
    return raw


def deploy_model(
    *,
    model_path: str,
    test_path: str,
    feature_metadata_path: str,
    training_report_path: str,
    gate_decision_path: str,
    target: str,
    registry_uri: str,
    model_name: str,
    data_sha256: str,
    kfp_run_id: str,
    deployment_out: str,
    pipeline_version: str = "",
    train_path: str = "",
    validation_report_path: str = "",
) -> DeploymentOutcome:
    """Publish the candidate as a signed, immutable version, smoke-test it, then move the pointer.

    Args:
        model_path: the candidate ``Pipeline`` (joblib).
        test_path: the test split; its first rows become the version's smoke rows.
        feature_metadata_path: engineer-features' metadata (the schema contract and split rule).
        training_report_path, gate_decision_path: train-model's report and the gate's decision.
        target: the label column.
        registry_uri, model_name: the registry.
        data_sha256: the batch's content fingerprint (the no-new-data trigger compares it).
        kfp_run_id, pipeline_version: recorded in the manifest and the pointer's history.
        deployment_out: the deployment record JSON.
        train_path: the training split, profiled for later drift checks.
        validation_report_path: the data gate's report (the suite's SHA-256 goes in the manifest).

    Returns:
        The outcome; ``promoted`` is False when another run moved the champion first.
    """
    gate = json.loads(Path(gate_decision_path).read_text())
    if gate["decision"] != ModelGate.DEPLOY:
        raise RegistryError(f"refusing to deploy: the gate decision is {gate['decision']!r}")
    training = json.loads(Path(training_report_path).read_text())
    x_test, _ = split_features_target(read_parquet(test_path), target)
    # Unpickled after the read (it imports scikit-learn's estimators, which nothing before the read uses), from the
    # very bytes the version stores: what the smoke test and the profile predict with is what is signed.
    model_bytes = Path(model_path).read_bytes()
    candidate = fitted_model(joblib.load(io.BytesIO(model_bytes)), model_path)
    # A chunk of rows at a time: the engineered matrix of the whole test split is never held (each row's label
    # is the same either way).
    predictions = np.concatenate(
        [
            candidate.predict(x_test.iloc[start : start + PREDICT_CHUNK_ROWS])
            for start in range(0, len(x_test) or 1, PREDICT_CHUNK_ROWS)
        ]
    )
    smoke_rows = detached_head(x_test, SMOKE_TEST_ROWS)
    del x_test  # freed before the training split is read for the profile

    registry = ModelRegistry(registry_uri, model_name)
    files = {
        **serving_files(model_bytes, model_name),  # serve/: all a server gets (gated_training.serving.layout)
        FEATURE_METADATA_FILE: Path(feature_metadata_path).read_bytes(),
        "training_report.json": Path(training_report_path).read_bytes(),
        "gate_decision.json": Path(gate_decision_path).read_bytes(),
        **smoke_files(
            smoke_rows,
            predictions[:SMOKE_TEST_ROWS],
            candidate.predict_proba(smoke_rows),
        ),
    }
    if train_path:
        # The drift checks of later runs compare against this, never against the old data itself.
        profile = profile_frame(read_parquet(train_path), target, predictions=predictions)
        files[REFERENCE_PROFILE_FILE] = json.dumps(json_safe(profile)).encode()
    feature_metadata = json.loads(files[FEATURE_METADATA_FILE])
    validation = json.loads(Path(validation_report_path).read_text()) if validation_report_path else {}
    if validation.get("suite_uri"):
        files[SUITE_FILE] = passed_suite(validation)
    version, manifest_sha = registry.publish(
        files,
        {
            "features": [column["name"] for column in feature_metadata.get("inputs", [])],
            "split": feature_metadata.get("split"),
            "suite": {"uri": validation.get("suite_uri"), "sha256": validation.get("suite_sha256")},
            "metrics": gate["candidate"]["metrics"],
            # How well the served probabilities were calibrated on the test split at gate time (Brier, ECE):
            # monitoring's estimated performance is trusted only when they were.
            "calibration": gate["candidate"].get("calibration"),
            "gate": {
                "decision": gate["decision"],
                "reasons": gate["reasons"],
                "checks": gate["checks"],
                "champion": (gate.get("champion") or {}).get("version"),
                "thresholds": gate["thresholds"],
            },
            # The drift gate's verdict travels with the version: a deploy over a drift warning is on record.
            "drift": gate.get("drift"),
            "data_sha256": data_sha256,
            "mlflow": {
                "run_id": training["mlflow_run_id"],
                "model_uri": training["mlflow_model_uri"],
                "tracking_uri": without_credentials(training["tracking_uri"]),
            },
            "mlflow_run_id": training["mlflow_run_id"],
            "kfp_run_id": kfp_run_id,
            # The image that serves it was built from the same pins as this one (component_images/).
            "serving": serving_record(os.environ.get("GATED_TRAINING_SERVING_IMAGE", "")),
            "pipeline": {
                "version": pipeline_version,
                "package_version": __version__,
                "image": os.environ.get("GATED_TRAINING_IMAGE", ""),
                "image_revision": os.environ.get("GATED_TRAINING_REVISION", ""),
            },
        },
    )
    smoke_test(registry, version, manifest_sha)  # the stored rows must predict as the candidate did

    champion = gate.get("champion") or {}
    try:
        pointer = registry.promote(
            version,
            manifest_sha,
            champion.get("pointer_token"),
            reason=f"gates passed in KFP run {kfp_run_id}",
            kfp_run_id=kfp_run_id,
        )
    except ChampionChangedError as exc:
        tagged = tag_outcome(training["tracking_uri"], training["mlflow_run_id"], "blocked", "champion_changed")
        logs.event("mlflow.outcome_tag", f"MLflow outcome tag: {tagged}", status=tagged, outcome="blocked")
        outcome = DeploymentOutcome(
            promoted=False,
            version=version,
            version_uri=registry.version_uri(version),
            blocked_reason=f"champion_changed: {exc}",
            previous_champion=champion.get("version"),
            mlflow_model_version=None,
            mlflow_mirror="not attempted",
        )
    else:
        mlflow_version, mirror = mirror_to_mlflow(
            training["tracking_uri"],
            model_name,
            training["mlflow_model_uri"],
            training["mlflow_run_id"],
            version,
            description=version_description(version, manifest_sha, gate),
        )
        outcome = DeploymentOutcome(
            promoted=True,
            version=version,
            version_uri=registry.version_uri(version),
            blocked_reason=None,
            previous_champion=pointer["previous_version"],
            mlflow_model_version=mlflow_version,
            mlflow_mirror=mirror,
        )
    Path(deployment_out).write_text(json.dumps(outcome.to_json(), indent=2))
    return outcome

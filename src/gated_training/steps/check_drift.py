"""check-drift, between validate-data and engineer-features: the drift gate (``drift.gate.check_batch``)
on the validated batch, written as the JSON record and the HTML report."""

from __future__ import annotations

import json
from pathlib import Path

from gated_training.config import ENGINES, DriftPolicy, require_choice
from gated_training.data import read_parquet
from gated_training.decisions import DriftGate
from gated_training.drift import DriftGateOutcome, check_batch


def drift_outcome(document: dict) -> DriftGateOutcome:
    """The outcome a drift record holds, its decision one of the gate's."""
    outcome = DriftGateOutcome(**document)
    if outcome.decision not in (DriftGate.TRAIN, DriftGate.SKIP, DriftGate.BLOCK):
        raise ValueError(f"decision {outcome.decision!r}")
    return outcome


def check_drift(
    *,
    dataset_path: str,
    validation_report_path: str,
    target: str,
    registry_uri: str,
    model_name: str,
    policy: DriftPolicy,
    report_out: str,
    html_out: str,
    engine: str = "pandas",
    dataset_uri: str = "",
) -> DriftGateOutcome:
    """The pipeline step: decide (:func:`check_batch`), then write the JSON record and the HTML report.

    Args:
        dataset_path: the validated batch (Parquet).
        validation_report_path: the data gate's report (its ``data_sha256`` drives no-new-data).
        target: the label column (left out of the comparison).
        registry_uri, model_name: where the champion and its reference profile are.
        policy: the drift policy and thresholds.
        report_out, html_out: the JSON record and the HTML report.
        engine: ``pandas``, or ``spark``: the batch's counts against the profile in one Spark pass (the same
            counts, hence the same decision).
        dataset_uri: where the batch is stored (the artifact's URI), which a SparkApplication on the cluster
            reads; ``dataset_path`` when empty.

    Returns:
        The outcome; ``decision`` is ``train``, ``skip`` or ``block`` (``decisions.DriftGate``).
    """
    from gated_training.drift import render_drift_html

    require_choice("engine", engine, ENGINES)
    if engine == "spark":
        from dataclasses import asdict

        from gated_training import spark

        outcome = spark.remote.run_on_cluster(
            "check-drift",
            {
                "dataset_path": dataset_uri or dataset_path,
                "target": target,
                "registry_uri": registry_uri,
                "model_name": model_name,
                "policy": asdict(policy),
            },
            spark.StepFiles(
                inputs={"validation_report_path": validation_report_path},
                files={"report_out": report_out, "html_out": html_out},
            ),
            record=report_out,
            build=drift_outcome,
        )
        if outcome is not None:  # on the cluster: the counting runs in a SparkApplication
            return outcome
    data_sha256 = json.loads(Path(validation_report_path).read_text())["data_sha256"]
    if engine == "spark":
        from gated_training import spark

        outcome = check_batch(
            lambda: spark.spark_session().read.parquet(spark.spark_path(dataset_path)),
            data_sha256,
            target,
            registry_uri,
            model_name,
            policy,
            tally=spark.drift_tallies,
        )
    else:
        outcome = check_batch(lambda: read_parquet(dataset_path), data_sha256, target, registry_uri, model_name, policy)
    Path(report_out).write_text(json.dumps(outcome.to_json(), indent=2))
    Path(html_out).write_text(render_drift_html(outcome.to_json()))
    return outcome

"""The "physical limit" reference: the pipeline's work in one process, with no orchestration.

The same library functions, suite, preprocessing, model, evaluation and registry write as the
pipeline, called one after another in this process: no per-step interpreter start, no
imports repeated, no artifacts copied by a runner. pipeline / baseline is the orchestration
overhead. Prints one JSON object: per-stage wall and CPU seconds, total, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any


def step_settings(typed: dict[str, Any]) -> dict[str, Any]:
    """Each step's settings from the run form's groups, built as the components build them (``group_settings``,
    ``from_group`` with the group's class): the bench's estimator and gate thresholds, not the classes' defaults."""
    from gated_training.config import group_settings

    return {
        group: group_settings(group, typed.get(group, {}))
        for group in ("drift", "features", "split", "training", "gate")
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument(
        "--params",
        required=True,
        help="JSON of every pipeline parameter, typed as `gated-training run` types them (bench.py writes it)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    stages: dict[str, dict[str, float]] = {}
    clock = {"wall": started, "cpu": time.process_time()}

    def mark(stage: str) -> None:
        now, cpu = time.monotonic(), time.process_time()
        stages[stage] = {"wall_seconds": round(now - clock["wall"], 3), "cpu_seconds": round(cpu - clock["cpu"], 3)}
        clock.update(wall=now, cpu=cpu)

    from gated_training.registry import ensure_local_key
    from gated_training.steps.check_drift import check_drift
    from gated_training.steps.deploy_model import deploy_model
    from gated_training.steps.engineer_features import engineer_features
    from gated_training.steps.evaluate_model import evaluate_model
    from gated_training.steps.train_model import train_model
    from gated_training.steps.validate_data import validate_data

    mark("imports")
    ensure_local_key()  # the registry is signed, as in the pipeline

    typed = json.loads(Path(args.params).read_text())
    settings = step_settings(typed)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = {
        name: str(work / name)
        for name in (
            "dataset.parquet",
            "validation.json",
            "docs.html",
            "drift.json",
            "drift.html",
            "train.parquet",
            "test.parquet",
            "preprocessor.joblib",
            "features.json",
            "model.joblib",
            "training.json",
            "importances.json",
            "decision.json",
            "gate.md",
            "deployment.json",
        )
    }
    registry = str(work / "registry")
    tracking = f"sqlite:///{work / 'mlflow.db'}"

    validation = validate_data(
        data_uri=args.data,
        suite_uri=args.suite,
        target=args.target,
        min_quality_score=0.8,
        dataset_out=out["dataset.parquet"],
        report_out=out["validation.json"],
        data_docs_out=out["docs.html"],
    )
    mark("validate-data")
    check_drift(
        dataset_path=out["dataset.parquet"],
        validation_report_path=out["validation.json"],
        target=args.target,
        registry_uri=registry,
        model_name="bench",
        policy=settings["drift"],
        report_out=out["drift.json"],
        html_out=out["drift.html"],
    )
    mark("check-drift")
    engineer_features(
        dataset_path=out["dataset.parquet"],
        target=args.target,
        feature_settings=settings["features"],
        split_settings=settings["split"],
        train_out=out["train.parquet"],
        test_out=out["test.parquet"],
        preprocessor_out=out["preprocessor.joblib"],
        metadata_out=out["features.json"],
        drift_report_path=out["drift.json"],
    )
    mark("engineer-features")
    train_model(
        train_path=out["train.parquet"],
        test_path=out["test.parquet"],
        preprocessor_path=out["preprocessor.joblib"],
        feature_metadata_path=out["features.json"],
        target=args.target,
        settings=settings["training"],
        tracking_uri=tracking,
        experiment="bench",
        data_sha256=validation.data_sha256,
        kfp_run_id="baseline",
        model_out=out["model.joblib"],
        report_out=out["training.json"],
        importances_out=out["importances.json"],
        drift_report_path=out["drift.json"],
    )
    mark("train-model")
    decision = evaluate_model(
        model_path=out["model.joblib"],
        test_path=out["test.parquet"],
        training_report_path=out["training.json"],
        target=args.target,
        thresholds=settings["gate"],
        registry_uri=registry,
        model_name="bench",
        decision_out=out["decision.json"],
        report_out=out["gate.md"],
        drift_report_path=out["drift.json"],
        feature_metadata_path=out["features.json"],
    )
    mark("evaluate-model")
    if decision.decision == "deploy":
        deploy_model(
            model_path=out["model.joblib"],
            test_path=out["test.parquet"],
            feature_metadata_path=out["features.json"],
            training_report_path=out["training.json"],
            gate_decision_path=out["decision.json"],
            target=args.target,
            registry_uri=registry,
            model_name="bench",
            data_sha256=validation.data_sha256,
            kfp_run_id="baseline",
            deployment_out=out["deployment.json"],
            pipeline_version="baseline",
            train_path=out["train.parquet"],
            validation_report_path=out["validation.json"],
        )
    mark("deploy-model")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "stages": stages,
                "wall_seconds": round(time.monotonic() - started, 3),
                "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
                "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                "decision": decision.decision,
                "accuracy": decision.candidate["metrics"]["accuracy"],
                "pid": os.getpid(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

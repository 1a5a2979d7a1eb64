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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--params", required=True,
                        help="JSON of every pipeline parameter, typed as `gated-training run` types them (bench.py writes it)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    stages: dict[str, dict[str, float]] = {}
    clock = {"wall": started, "cpu": time.process_time()}

    def mark(stage: str) -> None:
        now, cpu = time.monotonic(), time.process_time()
        stages[stage] = {"wall_seconds": round(now - clock["wall"], 3), "cpu_seconds": round(cpu - clock["cpu"], 3)}
        clock.update(wall=now, cpu=cpu)

    from gated_training.config import DriftPolicy, FeatureSettings, GateThresholds, ModelSettings, SplitSettings, settings_from
    from gated_training.steps.deploy_model import deploy_model
    from gated_training.steps.check_drift import check_drift
    from gated_training.steps.evaluate_model import evaluate_model
    from gated_training.steps.engineer_features import engineer_features
    from gated_training.signing import ensure_local_key
    from gated_training.steps.train_model import train_model
    from gated_training.steps.validate_data import validate_data
    mark("imports")
    ensure_local_key()  # the registry is signed, as in the pipeline

    typed = json.loads(Path(args.params).read_text())
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    out = {name: str(work / name) for name in (
        "dataset.parquet", "validation.json", "docs.html", "drift.json", "drift.html", "train.parquet",
        "test.parquet", "preprocessor.joblib", "features.json", "model.joblib", "training.json",
        "importances.json", "decision.json", "gate.md", "deployment.json")}
    registry = str(work / "registry")
    tracking = f"sqlite:///{work / 'mlflow.db'}"

    validation = validate_data(args.data, args.suite, args.target, 0.8, out["dataset.parquet"],
                                  out["validation.json"], out["docs.html"])
    mark("validate-data")
    check_drift(out["dataset.parquet"], out["validation.json"], args.target, registry, "bench",
                   settings_from(DriftPolicy, typed), out["drift.json"], out["drift.html"])
    mark("check-drift")
    engineer_features(out["dataset.parquet"], args.target, settings_from(FeatureSettings, typed),
                      settings_from(SplitSettings, typed), out["train.parquet"], out["test.parquet"],
                      out["preprocessor.joblib"], out["features.json"], drift_report_path=out["drift.json"])
    mark("engineer-features")
    train_model(out["train.parquet"], out["test.parquet"], out["preprocessor.joblib"], out["features.json"],
                args.target, settings_from(ModelSettings, typed), tracking, "bench", validation.data_sha256, "baseline",
                out["model.joblib"], out["training.json"], out["importances.json"], out["drift.json"])
    mark("train-model")
    decision = evaluate_model(out["model.joblib"], out["test.parquet"], out["training.json"], args.target,
                                  settings_from(GateThresholds, typed), registry, "bench", out["decision.json"],
                                  out["gate.md"], out["drift.json"], feature_metadata_path=out["features.json"])
    mark("evaluate-model")
    if decision.decision == "deploy":
        deploy_model(out["model.joblib"], out["test.parquet"], out["features.json"], out["training.json"],
                     out["decision.json"], args.target, registry, "bench", validation.data_sha256, "baseline",
                     out["deployment.json"], "baseline", out["train.parquet"],
                     validation_report_path=out["validation.json"])
    mark("deploy-model")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "stages": stages, "wall_seconds": round(time.monotonic() - started, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "decision": decision.decision, "accuracy": decision.candidate["metrics"]["accuracy"], "pid": os.getpid(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Builders shared by the unit, robustness and integration tests: real step outputs (features, a trained
candidate) for the tests of later steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gated_training.config import FeatureSettings, ModelSettings, SplitSettings
from gated_training.steps.engineer_features import engineer_features
from gated_training.steps.train_model import TrainingOutcome, train_model


@dataclass
class StepOutputs:
    root: Path
    tracking_uri: str
    training: TrainingOutcome

    def path(self, name: str) -> str:
        return str(self.root / name)


def train_candidate(
    root: Path,
    frame: pd.DataFrame,
    target: str = "label",
    tracking_uri: str | None = None,
    settings: ModelSettings = ModelSettings(n_estimators=30, cv_folds=3),
    features: FeatureSettings | None = None,
) -> StepOutputs:
    root.mkdir(parents=True, exist_ok=True)
    tracking_uri = tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
    frame.to_parquet(root / "data.parquet", index=False)
    engineer_features(
        dataset_path=str(root / "data.parquet"),
        target=target,
        feature_settings=features or FeatureSettings(),
        split_settings=SplitSettings(),
        train_out=str(root / "train.parquet"),
        test_out=str(root / "test.parquet"),
        preprocessor_out=str(root / "pre.joblib"),
        metadata_out=str(root / "meta.json"),
    )
    training = train_model(
        train_path=str(root / "train.parquet"),
        test_path=str(root / "test.parquet"),
        preprocessor_path=str(root / "pre.joblib"),
        feature_metadata_path=str(root / "meta.json"),
        target=target,
        settings=settings,
        tracking_uri=tracking_uri,
        experiment="tests",
        data_sha256="f" * 64,
        kfp_run_id="kfp-run-1",
        model_out=str(root / "model.joblib"),
        report_out=str(root / "training.json"),
        importances_out=str(root / "importances.json"),
    )
    return StepOutputs(root, tracking_uri, training)

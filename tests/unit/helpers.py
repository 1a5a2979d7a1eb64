"""Build real step outputs (features, a trained candidate) for the tests of later steps."""

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


def train_candidate(root: Path, frame: pd.DataFrame, target: str = "label", tracking_uri: str | None = None,
                    settings: ModelSettings = ModelSettings(n_estimators=30, cv_folds=3)) -> StepOutputs:
    root.mkdir(parents=True, exist_ok=True)
    tracking_uri = tracking_uri or f"sqlite:///{root / 'mlflow.db'}"
    frame.to_parquet(root / "data.parquet", index=False)
    engineer_features(str(root / "data.parquet"), target, FeatureSettings(), SplitSettings(),
                      str(root / "train.parquet"), str(root / "test.parquet"), str(root / "pre.joblib"),
                      str(root / "meta.json"))
    training = train_model(str(root / "train.parquet"), str(root / "test.parquet"), str(root / "pre.joblib"),
                           str(root / "meta.json"), target, settings, tracking_uri, "tests", "f" * 64, "kfp-run-1",
                           str(root / "model.joblib"), str(root / "training.json"), str(root / "importances.json"))
    return StepOutputs(root, tracking_uri, training)

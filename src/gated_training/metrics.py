"""Score a fitted model on labelled rows. Candidate and champion go through this same code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline

from gated_training.data import json_safe

MAX_ROC_POINTS = 200  # keeps the ClassificationMetrics artifact small in the KFP UI


@dataclass(frozen=True, kw_only=True)
class Scores:
    accuracy: float
    f1: float  # macro F1: defined for binary and multiclass, string or integer labels
    roc_auc: float | None  # None where undefined (a class missing from the rows scored)
    labels: list[Any]
    confusion_matrix: list[list[int]]
    roc_curve: dict[str, list[float]] | None  # binary only
    predicted: np.ndarray | None = field(default=None, repr=False, compare=False)  # for agreement and prediction drift

    def headline(self) -> dict[str, float]:
        values = {"accuracy": self.accuracy, "f1": self.f1}
        if self.roc_auc is not None:
            values["roc_auc"] = self.roc_auc
        return values


def _roc_auc(y: pd.Series, proba: np.ndarray | None, classes: np.ndarray) -> float | None:
    if proba is None or len(set(y)) < 2:
        return None
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    if set(y) != set(classes):
        return None
    return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes))


def _downsample_roc(y: pd.Series, proba: np.ndarray, positive: Any) -> dict[str, list[float]]:
    fpr, tpr, thresholds = roc_curve(y == positive, proba[:, 1])
    if len(fpr) > MAX_ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS).astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    thresholds = np.clip(thresholds, 0.0, 1.0)  # the first threshold is +inf: not JSON
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thresholds.tolist()}


def predict_labels_and_proba(model: Any, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """What ``predict`` and ``predict_proba`` return, with a Pipeline's transforms run once for
    both (calling the two would run them twice: a third of the scoring time at 1M rows)."""
    if isinstance(model, Pipeline) and len(model.steps) > 1:
        final = model.steps[-1][1]
        rows = model[:-1].transform(features)
        return final.predict(rows), final.predict_proba(rows) if hasattr(final, "predict_proba") else None
    return model.predict(features), model.predict_proba(features) if hasattr(model, "predict_proba") else None


def score_model(model: Any, features: pd.DataFrame, labels: pd.Series) -> Scores:
    classes = np.asarray(model.classes_)
    predicted, proba = predict_labels_and_proba(model, features)
    all_labels = sorted(set(classes.tolist()) | set(pd.unique(labels).tolist()), key=str)
    roc = _downsample_roc(labels, proba, classes[1]) if proba is not None and len(classes) == 2 and labels.nunique() == 2 else None
    return Scores(
        accuracy=float(accuracy_score(labels, predicted)),
        f1=float(f1_score(labels, predicted, average="macro", labels=all_labels, zero_division=0)),
        roc_auc=_roc_auc(labels, proba, classes),
        labels=json_safe(all_labels),
        confusion_matrix=confusion_matrix(labels, predicted, labels=all_labels).tolist(),
        roc_curve=roc,
        predicted=predicted,
    )

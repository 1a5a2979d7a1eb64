"""Score a fitted model on labelled rows. Candidate, champion and the prior predictor go through this same code."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline

from gated_training.data import json_safe, label_key

MAX_ROC_POINTS = 200  # keeps the ClassificationMetrics artifact small in the KFP UI
SCORE_CHUNK_ROWS = 25_000  # score_model: rows predicted at a time
# Metrics where higher is better, in the order reports list them; ``brier`` (lower is better) follows.
HEADLINE = ("accuracy", "balanced_accuracy", "f1", "roc_auc")


@dataclass(frozen=True, kw_only=True)
class Scores:
    accuracy: float
    f1: float  # macro F1: defined for binary and multiclass, string or integer labels
    roc_auc: float | None  # None where undefined (a class missing from the rows scored)
    labels: list[Any]
    confusion_matrix: list[list[int]]
    roc_curve: dict[str, list[float]] | None  # binary only
    balanced_accuracy: float = 0.0  # mean recall over the classes present in the rows (1/K for a constant guess)
    brier: float | None = None  # mean squared error of the class probabilities (multiclass Brier), lower is better
    predicted: np.ndarray | None = field(default=None, repr=False, compare=False)  # for agreement and prediction drift
    proba: np.ndarray | None = field(default=None, repr=False, compare=False)  # columns in ``labels`` order

    def headline(self) -> dict[str, float]:
        values = {"accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy, "f1": self.f1}
        if self.roc_auc is not None:
            values["roc_auc"] = self.roc_auc
        if self.brier is not None:
            values["brier"] = self.brier
        return values


def label_order(*groups: Any) -> list[Any]:
    """Every label of ``groups`` once, in one stable order (by their JSON key), ``1`` and ``1.0`` as one."""
    seen: dict[str, Any] = {}
    for group in groups:
        for value in np.asarray(group, dtype=object).tolist():
            seen.setdefault(label_key(value), value)
    return [seen[k] for k in sorted(seen)]


def label_codes(values: Any, labels: Sequence[Any]) -> np.ndarray:
    """Integer codes of ``values`` in ``labels`` (matched by their JSON key)."""
    index = {label_key(label): code for code, label in enumerate(labels)}
    codes, uniques = pd.factorize(pd.Series(np.asarray(values)), sort=False)  # hashing: fast at any size
    mapping = np.array([index[label_key(value)] for value in uniques.tolist()], dtype=np.int64)
    return mapping[codes] if len(mapping) else np.zeros(0, dtype=np.int64)


def aligned_proba(proba: np.ndarray | None, model_classes: Sequence[Any], labels: Sequence[Any]) -> np.ndarray | None:
    """Class probabilities with one column per label of ``labels`` (0 for a class the model never saw)."""
    if proba is None:
        return None
    aligned = np.zeros((proba.shape[0], len(labels)), dtype=np.float64)
    aligned[:, label_codes(model_classes, labels)] = proba
    return aligned


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


def _forest_answers(forest: Any, rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """A fitted forest's ``predict`` and ``predict_proba``, the same bits on every run.

    sklearn's forests sum their trees' probabilities in threads in whatever order the threads finish, so with
    ``n_jobs`` above 1 the same rows scored twice differ in the last bit, and ties in the scores (the ROC curve's
    thresholds, DeLong's placements) with them: the gate must not change its numbers between two runs on the same
    rows, nor between engines. Here every row's trees are summed in tree order (``n_jobs=1``), the rows split
    across threads instead; ``predict`` is the forest's own ``classes_.take(argmax)`` of those probabilities, so
    the trees run once, not twice."""
    import copy
    from concurrent.futures import ThreadPoolExecutor

    from joblib import effective_n_jobs

    sequential = copy.copy(forest)  # shares the fitted trees
    sequential.n_jobs = 1
    count = rows.shape[0]
    workers = max(1, min(effective_n_jobs(forest.n_jobs), count // 1_000 or 1))
    bounds = np.linspace(0, count, workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lambda b: sequential.predict_proba(rows[b[0] : b[1]]), zip(bounds[:-1], bounds[1:])))
    proba = np.concatenate(parts) if parts else sequential.predict_proba(rows)
    return forest.classes_.take(np.argmax(proba, axis=1), axis=0), proba


def _final_answers(final: Any, rows: Any) -> tuple[np.ndarray, np.ndarray | None]:
    # A forest can only have been loaded with sklearn.ensemble imported: for any other model (xgboost's booster)
    # the 1.3 s import is not paid, in the step or in a Spark worker.
    ensemble = sys.modules.get("sklearn.ensemble")
    forests = (ensemble.RandomForestClassifier, ensemble.ExtraTreesClassifier) if ensemble is not None else ()
    if forests and isinstance(final, forests) and final.n_outputs_ == 1:
        return _forest_answers(final, rows)
    return final.predict(rows), final.predict_proba(rows) if hasattr(final, "predict_proba") else None


def predict_labels_and_proba(model: Any, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """What ``predict`` and ``predict_proba`` return, with a Pipeline's transforms run once for
    both (calling the two would run them twice: a third of the scoring time at 1M rows), and a forest's
    probabilities the same on every run (:func:`_forest_answers`)."""
    if isinstance(model, Pipeline) and len(model.steps) > 1:
        return _final_answers(model.steps[-1][1], model[:-1].transform(features))
    return _final_answers(model, features)


def score_predictions(
    labels: pd.Series, predicted: np.ndarray, proba: np.ndarray | None, classes: np.ndarray
) -> Scores:
    """Scores of given predictions (``proba`` columns in ``classes`` order) against ``labels``."""
    from gated_training.stats import brier_per_row, confusion_metric

    classes = np.asarray(classes, dtype=object) if not isinstance(classes, np.ndarray) else classes
    all_labels = label_order(classes, pd.unique(labels))
    y_codes, p_codes = label_codes(labels, all_labels), label_codes(predicted, all_labels)
    aligned = aligned_proba(proba, classes.tolist(), all_labels)
    roc = (
        _downsample_roc(labels, proba, classes[1])
        if proba is not None and len(classes) == 2 and labels.nunique() == 2
        else None
    )
    return Scores(
        accuracy=float(accuracy_score(labels, predicted)),
        f1=float(f1_score(labels, predicted, average="macro", labels=all_labels, zero_division=0)),
        roc_auc=_roc_auc(labels, proba, classes),
        labels=json_safe(all_labels),
        confusion_matrix=confusion_matrix(labels, predicted, labels=all_labels).tolist(),
        roc_curve=roc,
        balanced_accuracy=confusion_metric("balanced_accuracy", y_codes, p_codes, len(all_labels)),
        brier=float(brier_per_row(y_codes, aligned).mean()) if aligned is not None and len(y_codes) else None,
        predicted=predicted,
        proba=aligned,
    )


def score_model(model: Any, features: pd.DataFrame, labels: pd.Series) -> Scores:
    """The scores of ``model``'s answers on ``features``, predicted ``SCORE_CHUNK_ROWS`` rows at a time: each
    row's answer is the same, and the engineered matrix of every row is never held at once (at 1M rows, the
    test split's was train-model's peak with XGBoost)."""
    answers = [
        predict_labels_and_proba(model, features.iloc[start : start + SCORE_CHUNK_ROWS])
        for start in range(0, len(features) or 1, SCORE_CHUNK_ROWS)
    ]
    predicted = np.concatenate([chunk for chunk, _ in answers])
    proba = None if answers[0][1] is None else np.concatenate([chunk for _, chunk in answers])
    del answers
    return score_predictions(labels, predicted, proba, np.asarray(model.classes_))


def prior_predictions(
    train_counts: dict[str, int], classes: Sequence[Any] | np.ndarray, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """The prior predictor: the training split's most common class for every row, and the training
    class shares as its probabilities (columns in ``classes`` order). Ties go to the first label in order."""
    counts = np.array([float(train_counts.get(label_key(c), 0)) for c in classes])
    shares = counts / counts.sum() if counts.sum() else np.full(len(classes), 1 / len(classes))
    majority = classes[int(np.argmax(counts))]
    predicted = np.empty(rows, dtype=object)
    predicted[:] = majority
    try:
        predicted = predicted.astype(np.asarray(list(classes)).dtype)
    except (TypeError, ValueError):
        pass
    return predicted, np.tile(shares, (rows, 1))

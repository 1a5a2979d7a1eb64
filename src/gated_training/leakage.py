"""Leakage: a feature that alone predicts the label almost perfectly is a copy of the label.

For each input feature, a one-feature model is fitted on the training split and scored on the
test split with *balanced* accuracy (so a majority class never looks predictive: a useless
feature scores ``1 / classes``):

- numeric: a depth-3 decision tree on the value, with missing values as their own branch;
- categorical: each category's most common label in the training split (categories seen fewer
  than ``MIN_CATEGORY_ROWS`` times, and unseen ones, predict the overall majority), so an ID
  or free-text column, unique per row, predicts nothing.

The model gate blocks a candidate when any feature scores above ``max_single_feature_score``.
Above ``SAMPLE_ROWS`` rows the scores come from a fixed sample of each split. Labels are scored as
integer codes in their sorted order (ties break as they would on the labels themselves), so no
step sorts strings per feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from gated_training.data import is_numeric_feature, label_key

SAMPLE_ROWS = 20_000
MIN_CATEGORY_ROWS = 5


def _sample(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(rows, random_state=0)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true`` (integer label codes), as
    ``sklearn.metrics.balanced_accuracy_score`` computes it, without sorting the labels again."""
    classes = int(max(y_true.max(), y_pred.max())) + 1
    support = np.bincount(y_true, minlength=classes)
    hits = np.bincount(y_true[y_true == y_pred], minlength=classes)
    present = support > 0
    return float(np.mean(hits[present] / support[present]))


def _numeric_score(train: pd.Series, y_train: np.ndarray, test: pd.Series, y_test: np.ndarray) -> float:
    def design(values: pd.Series) -> np.ndarray:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        missing = ~np.isfinite(numbers)
        return np.column_stack([np.where(missing, 0.0, numbers), missing.astype(float)])

    tree = DecisionTreeClassifier(max_depth=3, min_samples_leaf=max(5, len(train) // 200), random_state=0)
    tree.fit(design(train), y_train)
    return balanced_accuracy(y_test, tree.predict(design(test)))


def _categorical_score(train: pd.Series, y_train: np.ndarray, test: pd.Series, y_test: np.ndarray) -> float:
    keys = train.astype(object).where(train.notna(), "\x00missing").map(str)
    frame = pd.DataFrame({"key": keys.to_numpy(), "label": y_train})
    counts = frame.groupby(["key", "label"]).size().unstack(fill_value=0)
    majority = pd.Series(y_train).mode().iloc[0]
    supported = counts[counts.sum(axis=1) >= MIN_CATEGORY_ROWS]
    lookup = supported.idxmax(axis=1).to_dict()
    test_keys = test.astype(object).where(test.notna(), "\x00missing").map(str)
    predicted = test_keys.map(lookup).fillna(majority).to_numpy(dtype=np.int64)
    return balanced_accuracy(y_test, predicted)


def single_feature_scores(train: pd.DataFrame, test: pd.DataFrame, target: str) -> dict[str, float]:
    """Balanced test accuracy of a one-feature model, per input feature, best first."""
    train, test = _sample(train, SAMPLE_ROWS), _sample(test, SAMPLE_ROWS)
    keys = [label_key(v) for v in train[target]] + [label_key(v) for v in test[target]]
    codes, _ = pd.factorize(np.array(keys, dtype=object), sort=True)
    y_train, y_test = codes[:len(train)].astype(np.int64), codes[len(train):].astype(np.int64)
    if len(np.unique(y_train)) < 2 or len(np.unique(y_test)) < 2:
        return {}
    scores: dict[str, float] = {}
    for column in train.columns:
        if column == target:
            continue
        scorer = _numeric_score if is_numeric_feature(train[column]) else _categorical_score
        scores[str(column)] = round(scorer(train[column], y_train, test[column], y_test), 6)
    return dict(sorted(scores.items(), key=lambda item: -item[1]))


def leakage_summary(scores: dict[str, Any], classes: int) -> str:
    best = next(iter(scores.items()), None)
    if best is None:
        return "no single-feature scores"
    return f"best single feature {best[0]}: balanced accuracy {best[1]:.4f} (a useless feature scores {1 / max(classes, 1):.2f})"

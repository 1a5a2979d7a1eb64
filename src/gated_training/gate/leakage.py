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
    y_train, y_test = codes[: len(train)].astype(np.int64), codes[len(train) :].astype(np.int64)
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
    return (
        f"best single feature {best[0]}: balanced accuracy {best[1]:.4f} (a useless feature scores "
        f"{1 / max(classes, 1):.2f})"
    )


# -- pairs -----------------------------------------------------------------------------------------

PAIR_FEATURES = 8  # pairs among this many of the model's most important input columns: at most 28 pairs
PAIR_NUMERIC_BINS = 8
PAIR_LEVELS = 15


def _bins(train: pd.Series, test: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Both columns as small integer bins fitted on the training rows: numeric quantile bins, or the
    most common categories (the rest pooled, missing values a bin of their own)."""
    if is_numeric_feature(train):
        numbers = pd.to_numeric(train, errors="coerce").to_numpy(dtype=float)
        finite = numbers[np.isfinite(numbers)]
        edges = (
            np.unique(np.quantile(finite, np.linspace(0, 1, PAIR_NUMERIC_BINS + 1)[1:-1]))
            if len(finite)
            else np.array([])
        )

        def cut(values: pd.Series) -> np.ndarray:
            x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            return np.where(np.isfinite(x), np.searchsorted(edges, np.nan_to_num(x), side="right") + 1, 0)

        return cut(train), cut(test)
    keys = train.astype(object).where(train.notna(), "\x00missing").map(str)
    top = {value: index + 2 for index, value in enumerate(keys.value_counts().index[:PAIR_LEVELS])}

    def code(values: pd.Series) -> np.ndarray:
        text = values.astype(object).where(values.notna(), "\x00missing").map(str)
        return np.asarray(text.map(top).fillna(1).to_numpy(dtype=np.int64))

    return code(train), code(test)


def _pair_score(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    y_train: np.ndarray,
    y_test: np.ndarray,
    classes: int,
) -> tuple[float, float]:
    """Balanced test accuracy of two models over both columns' bins: a lookup table (each cell with enough
    training rows predicts its most common label, the others the overall majority), which can learn any
    combination, and an additive one (naive Bayes over the two columns' own label rates, balanced priors),
    which can only add up what each column says alone. A label carried by the combination of two columns
    and by neither alone (``k2 = k1 XOR label``) is what the lookup table gets and the additive model misses."""
    width = int(max(a[0].max(initial=0), a[1].max(initial=0))) + 1
    cell_train, cell_test = b[0] * width + a[0], b[1] * width + a[1]
    cells = int(max(cell_train.max(initial=0), cell_test.max(initial=0))) + 1
    counts = np.zeros((cells, classes), dtype=np.int64)
    np.add.at(counts, (cell_train, y_train), 1)
    majority = int(np.bincount(y_train, minlength=classes).argmax())
    lookup = np.where(counts.sum(axis=1) >= MIN_CATEGORY_ROWS, counts.argmax(axis=1), majority)
    joint = balanced_accuracy(y_test, lookup[cell_test])

    def log_likelihood(bins: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        table = np.ones((int(max(bins[0].max(initial=0), bins[1].max(initial=0))) + 1, classes))  # Laplace
        np.add.at(table, (bins[0], y_train), 1)
        return np.asarray(np.log(table / table.sum(axis=0, keepdims=True))[bins[1]], dtype=np.float64)

    additive = balanced_accuracy(y_test, np.argmax(log_likelihood(a) + log_likelihood(b), axis=1))
    return joint, additive


def input_columns_by_importance(importances: list[dict[str, Any]], columns: list[str]) -> list[str]:
    """Input columns in the order of their most important engineered feature: an engineered name
    (``categorical__sex_female``) belongs to the longest input column name it starts with."""
    ranked: list[str] = []
    by_length = sorted(columns, key=len, reverse=True)
    for entry in importances:
        name = str(entry["feature"])
        rest = name.split("__", 1)[1] if "__" in name else name
        rest = rest.split(" ", 1)[0]  # a polynomial term: its first factor
        owner = next((column for column in by_length if rest == column or rest.startswith(f"{column}_")), None)
        if owner is not None and owner not in ranked:
            ranked.append(owner)
    return ranked


def pair_feature_scores(
    train: pd.DataFrame, test: pd.DataFrame, target: str, candidates: list[str], single_scores: dict[str, float]
) -> tuple[list[dict[str, Any]], int]:
    """Balanced test accuracy of a two-column lookup model for every pair among ``candidates`` (at most
    ``PAIR_FEATURES``), best first, with the better single-column score of each pair, the additive model's
    score, and the gain of the combination over the additive model (``gain``). A label split across two
    columns (``k2 = k1 XOR label``) scores near 1 together and near chance additively; two strong features of
    real data (a tumour's size and its concavity) score high both ways.
    Returns the pairs and the test rows scored (fixed samples of at most ``SAMPLE_ROWS`` per split)."""
    import itertools

    train, test = _sample(train, SAMPLE_ROWS), _sample(test, SAMPLE_ROWS)
    keys = [label_key(v) for v in train[target]] + [label_key(v) for v in test[target]]
    codes, uniques = pd.factorize(np.array(keys, dtype=object), sort=True)
    y_train, y_test = codes[: len(train)].astype(np.int64), codes[len(train) :].astype(np.int64)
    if len(np.unique(y_train)) < 2 or len(np.unique(y_test)) < 2:
        return [], len(test)
    chosen = [c for c in candidates if c in train.columns and c != target][:PAIR_FEATURES]
    binned = {column: _bins(train[column], test[column]) for column in chosen}
    pairs = []
    for first, second in itertools.combinations(chosen, 2):
        joint, additive = _pair_score(binned[first], binned[second], y_train, y_test, len(uniques))
        best_single = max(single_scores.get(first, 0.0), single_scores.get(second, 0.0))
        pairs.append(
            {
                "features": [first, second],
                "score": round(joint, 6),
                "best_single": best_single,
                "additive": round(additive, 6),
                "gain": round(joint - max(additive, best_single), 6),
            }
        )
    return sorted(pairs, key=lambda p: (-p["score"], p["features"])), len(test)

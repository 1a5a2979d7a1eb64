"""Permutation importance per input column, computed on the already transformed sample.

``sklearn.inspection.permutation_importance`` on the whole ``Pipeline`` re-runs the
preprocessor for every column and repeat (30 columns x 5 repeats = 150 transforms of the
sample: most of the training step's fixed cost). When every engineered column depends on one
input column only, row by row (imputation and encoding, no interactions or selection),
permuting an input's rows and transforming equals transforming once and permuting the rows of
that input's output block. So the sample is transformed once, and sklearn's own permutation
loop permutes a matrix of row indices instead of the raw columns: the same random generator,
the same shuffles, the same scores, so the importances are identical to the slow path's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

N_REPEATS = 5


def input_column_blocks(preprocessor: Pipeline, inputs: list[str]) -> list[np.ndarray] | None:
    """For each input column, the transformed columns computed from it alone; None when some
    transformed column mixes inputs or the structure is not one this function understands."""
    # "missing" (None → NaN, per value) changes no column's meaning; interactions, polynomials and
    # SelectKBest mix or drop columns.
    if [name for name, _ in preprocessor.steps if name != "missing"] != ["columns"]:
        return None
    columns: ColumnTransformer = preprocessor.named_steps["columns"]
    blocks: dict[str, list[int]] = {name: [] for name in inputs}
    for name, transformer, _selected in columns.transformers_:
        if transformer == "drop":
            continue
        widths = _output_widths(transformer)
        if widths is None:
            return None
        position = columns.output_indices_[name].start
        for column, width in widths:
            if column not in blocks:
                return None
            blocks[column].extend(range(position, position + width))
            position += width
        if position != columns.output_indices_[name].stop:
            return None
    return [np.asarray(blocks[name], dtype=np.intp) for name in inputs]


def _output_widths(transformer: Any) -> list[tuple[str, int]] | None:
    """(input column, number of output columns) in output order, for the transformers that
    ``features.build_preprocessor`` uses."""
    steps = transformer.steps if isinstance(transformer, Pipeline) else [("only", transformer)]
    if len(steps) == 1 and isinstance(steps[0][1], (OneHotEncoder, OrdinalEncoder)):  # booleans: no imputer
        steps = [("none", None), *steps]
    imputer, encoder = steps[0][1], steps[-1][1] if len(steps) > 1 else None
    if len(steps) > 2 or not (imputer is None or isinstance(imputer, SimpleImputer)):
        return None
    # An imputer drops all-missing columns; a bare encoder keeps every input.
    if imputer is None:
        assert encoder is not None  # a group is an imputer, an encoder, or both
        kept = [str(name) for name in encoder.feature_names_in_]
    else:
        kept = [str(name) for name in imputer.get_feature_names_out()]
    if encoder is None or isinstance(encoder, OrdinalEncoder):
        return [(name, 1) for name in kept]
    if isinstance(encoder, OneHotEncoder) and encoder.drop is None:
        # One output column per frequent category, plus one for the pooled infrequent ones.
        infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * len(encoder.categories_)
        return [
            (name, len(categories) if pooled is None else len(categories) - len(pooled) + 1)
            for name, categories, pooled in zip(kept, encoder.categories_, infrequent)
        ]
    return None


class _RowPermutedModel(ClassifierMixin, BaseEstimator):
    """Predicts from a matrix of row indices: column j says which sample row input j's
    transformed values come from."""

    def __init__(self, estimator: Any, transformed: np.ndarray, blocks: list[np.ndarray]) -> None:
        self.estimator = estimator
        self.transformed = transformed
        self.blocks = blocks
        self.classes_ = estimator.classes_

    def fit(self, row_indices: np.ndarray, labels: np.ndarray) -> _RowPermutedModel:
        return self  # wraps an estimator that is already fitted; sklearn's validation asks for fit

    def predict(self, row_indices: np.ndarray) -> np.ndarray:
        assembled = self.transformed.copy()
        identity = np.arange(len(assembled))
        for column, block in enumerate(self.blocks):
            rows = row_indices[:, column]
            if block.size and not np.array_equal(rows, identity):
                assembled[:, block] = self.transformed[np.ix_(rows, block)]
        return np.asarray(self.estimator.predict(assembled))


def permutation_importances(model: Pipeline, sample: pd.DataFrame, labels: pd.Series, random_state: int) -> np.ndarray:
    """Mean accuracy drop per input column of ``sample`` over ``N_REPEATS`` shuffles."""
    from sklearn.inspection import permutation_importance  # imports sklearn.ensemble: 1.3 s, only here

    preprocessor, estimator = model.named_steps["preprocess"], model.named_steps["model"]
    blocks = input_column_blocks(preprocessor, [str(c) for c in sample.columns])
    transformed = preprocessor.transform(sample) if blocks is not None else None
    if blocks is None or not isinstance(transformed, np.ndarray) or transformed.shape[1] != sum(b.size for b in blocks):
        result = permutation_importance(
            model, sample, labels, n_repeats=N_REPEATS, random_state=random_state, scoring="accuracy"
        )
        return np.asarray(result.importances_mean, dtype=np.float64)
    row_indices = np.tile(np.arange(len(sample)), (sample.shape[1], 1)).T
    result = permutation_importance(
        _RowPermutedModel(estimator, transformed, blocks),
        row_indices,
        labels.to_numpy(),
        n_repeats=N_REPEATS,
        random_state=random_state,
        scoring="accuracy",
    )
    return np.asarray(result.importances_mean, dtype=np.float64)

"""Gradient-boosted trees trained by XGBoost, as the last step of the deployed ``Pipeline`` (estimator=xgboost).

Its import path is in every pickled model that uses it (like ``missing_values``), and MLflow ships this module
with the logged model. The pickled state is the settings, the classes and the booster in XGBoost's own binary
format (UBJSON): no XGBoost object is ever pickled, so the same artifact comes from ``xgboost.train`` on one pod
and from ``xgboost.spark`` on a cluster (:meth:`BoostedTrees.from_booster`), and skops trusts one type.

The labels may be anything the gate accepts (strings, integers): XGBoost learns codes 0..K-1, ``classes_``
maps them back in sorted order, as scikit-learn's classifiers do. xgboost is imported when a model is first
fitted or asked for a prediction, never on unpickling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

# XGBoost's depth when max_depth=0 (its own default); depthwise growth has no "unlimited".
DEFAULT_DEPTH = 6
BOOSTER_FORMAT = "ubj"


def booster_params(
    *,
    classes: int,
    max_depth: int,
    learning_rate: float,
    random_state: int,
    categorical: list[bool] | None = None,
) -> dict[str, Any]:
    """The booster parameters both engines train with: ``xgboost.train`` here, ``SparkXGBClassifier`` on Spark."""
    params: dict[str, Any] = {
        "tree_method": "hist",
        "max_depth": max_depth or DEFAULT_DEPTH,
        "learning_rate": learning_rate,
        "seed": random_state,
        "objective": "binary:logistic" if classes == 2 else "multi:softprob",
    }
    if classes > 2:
        params["num_class"] = classes
    if categorical and any(categorical):
        params["max_cat_to_onehot"] = 1  # partition-based splits on category codes, as HistGradientBoosting's native
    return params


def feature_types(categorical: list[bool] | None, width: int) -> list[str] | None:
    """XGBoost's per-column types: ``c`` for a category code (categorical_encoding=native), ``q`` otherwise."""
    if not categorical or not any(categorical):
        return None
    if len(categorical) != width:
        raise ValueError(f"{len(categorical)} categorical flags for {width} engineered columns")
    return ["c" if flag else "q" for flag in categorical]


class BoostedTrees(ClassifierMixin, BaseEstimator):
    """A classifier over XGBoost's booster for any labels; ``n_estimators`` boosting rounds."""

    def __init__(
        self,
        n_estimators: int = 100,
        max_depth: int = 0,
        learning_rate: float = 0.1,
        random_state: int = 0,
        categorical: list[bool] | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state
        self.categorical = categorical
        self.n_jobs = n_jobs

    def params(self, classes: int) -> dict[str, Any]:
        return booster_params(
            classes=classes,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            random_state=self.random_state,
            categorical=self.categorical,
        )

    def fit(self, X: Any, y: Any) -> BoostedTrees:
        return self.fit_consuming([(X, y)])

    def fit_consuming(self, parts: list[tuple[Any, Any]]) -> BoostedTrees:
        """``fit`` on the one ``(X, y)`` popped from ``parts``. When the caller holds no other reference to ``X``,
        its matrix is freed as soon as XGBoost's quantile matrix (a byte per cell) is built, before the boosting
        rounds: the same booster as ``fit``, without the float32 matrix beside it while it trains."""
        import xgboost

        X, y = parts.pop()
        features = np.asarray(X, dtype=np.float32)
        del X
        classes, codes = np.unique(np.asarray(y), return_inverse=True)
        del y
        if len(classes) < 2:
            raise ValueError(f"BoostedTrees needs at least two classes; the labels hold {len(classes)}")
        width = features.shape[1]
        types = feature_types(self.categorical, width)
        matrix = xgboost.QuantileDMatrix(
            features, label=codes, feature_types=types, enable_categorical=types is not None, nthread=self.n_jobs
        )
        del features, codes
        params = {**self.params(len(classes)), **({"nthread": self.n_jobs} if self.n_jobs else {})}
        booster = xgboost.train(params, matrix, num_boost_round=self.n_estimators)
        return self._fitted(bytes(booster.save_raw(BOOSTER_FORMAT)), classes, width)

    @classmethod
    def from_booster(cls, raw: bytes, classes: Any, width: int, **settings: Any) -> BoostedTrees:
        """The classifier around a booster trained elsewhere (``xgboost.spark``) on the codes of ``classes``."""
        return cls(**settings)._fitted(bytes(raw), np.asarray(classes), width)

    def _fitted(self, raw: bytes, classes: np.ndarray, width: int) -> BoostedTrees:
        self.booster_raw_ = raw
        self.classes_ = classes
        self.n_features_in_ = width
        self._booster: Any = None
        return self

    def booster(self) -> Any:
        """The live ``xgboost.Booster``, loaded from the pickled bytes on first use."""
        if getattr(self, "_booster", None) is None:
            import xgboost

            booster = xgboost.Booster()
            booster.load_model(bytearray(self.booster_raw_))
            if self.n_jobs:
                booster.set_param({"nthread": self.n_jobs})
            self._booster = booster
        return self._booster

    def predict_proba(self, X: Any) -> np.ndarray:
        features = np.asarray(X, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} engineered columns, got shape {features.shape}")
        if not len(features):
            return np.empty((0, len(self.classes_)))
        import xgboost

        types = feature_types(self.categorical, features.shape[1])
        matrix = xgboost.DMatrix(features, feature_types=types, enable_categorical=types is not None)
        scores = np.asarray(self.booster().predict(matrix), dtype=np.float64)
        if len(self.classes_) == 2:
            return np.column_stack([1.0 - scores, scores])
        return scores.reshape(len(features), len(self.classes_))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total gain per engineered column, summing to 1 (0 for a column no split used)."""
        gains = self.booster().get_score(importance_type="total_gain")
        values = np.array([gains.get(f"f{i}", 0.0) for i in range(self.n_features_in_)], dtype=np.float64)
        total = values.sum()
        return values / total if total > 0 else values

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_booster", None)  # rebuilt from booster_raw_; an XGBoost object is never pickled
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._booster = None

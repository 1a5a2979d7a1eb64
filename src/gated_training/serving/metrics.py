"""What the serving runtime tells Prometheus about the model, on MLServer's metrics port beside its own metrics.

Every series is labelled ``model`` (the InferenceService name) and ``version`` (the registry version this pod serves
and verified), so champion and canary are apart; V2 and V1 requests alike (``protocol``):

- ``gated_training_requests_total{protocol, outcome}``: requests answered (``ok``) or refused (``error``), and
  ``gated_training_request_duration_seconds{protocol}`` (histogram): MLServer's own ``model_infer_*`` series label
  the version a request's URL names (``None`` for ``/v2/models/<name>/infer``) and never see V1;
- ``gated_training_request_rows``: rows per request (histogram);
- ``gated_training_predictions_total{class}``: predicted classes (the model's own, so the label set is bounded by
  the model; a class beyond ``MAX_CLASSES`` is counted as ``_other``);
- ``gated_training_predicted_probability``: the probability of the predicted class (histogram);
- ``gated_training_input_rows_total``, and per feature of the version's reference profile
  ``gated_training_input_missing_total{feature}``, ``gated_training_input_out_of_range_total{feature}`` (numbers
  outside the training range) and ``gated_training_input_unseen_total{feature}`` (categories the training data
  never had).

Label values come from the model and its profile, never from a request: what a caller sends can raise a count,
never add a series. A feature name is a label value as the profile spells it (at most ``MAX_FEATURES`` of them).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

PREFIX = "gated_training"
MAX_CLASSES = 50
MAX_FEATURES = 200
OTHER_CLASS = "_other"
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 500, 1000, 5000, 10000)
PROBABILITY_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
PROFILE_OTHER = "__other__"  # the profile's bucket for categories beyond its list: unseen cannot be told then

METRIC_NAMES = (
    f"{PREFIX}_requests_total",
    f"{PREFIX}_request_duration_seconds",
    f"{PREFIX}_request_rows",
    f"{PREFIX}_predictions_total",
    f"{PREFIX}_predicted_probability",
    f"{PREFIX}_input_rows_total",
    f"{PREFIX}_input_missing_total",
    f"{PREFIX}_input_out_of_range_total",
    f"{PREFIX}_input_unseen_total",
)


def _label(value: Any) -> str:
    text = str(value)
    return text[:128]


_FAMILIES: dict[int, dict[str, Any]] = {}


def _families(registry: Any) -> dict[str, Any]:
    """The metric families, registered once per registry (a model reloaded in the same process reuses them)."""
    from prometheus_client import Counter, Histogram

    if id(registry) in _FAMILIES:
        return _FAMILIES[id(registry)]
    base = ["model", "version"]

    def counter(name: str, doc: str, extra: Sequence[str] = ()) -> Any:
        return Counter(f"{PREFIX}_{name}", doc, [*base, *extra], registry=registry)

    def histogram(name: str, doc: str, buckets: Sequence[float], extra: Sequence[str] = ()) -> Any:
        return Histogram(f"{PREFIX}_{name}", doc, [*base, *extra], buckets=buckets, registry=registry)

    _FAMILIES[id(registry)] = {
        "requests": counter("requests", "Requests answered or refused, by protocol", ("protocol", "outcome")),
        "duration": histogram(
            "request_duration_seconds", "Time to answer a request, in the runtime", DURATION_BUCKETS, ("protocol",)
        ),
        "rows": histogram("request_rows", "Rows per request", ROW_BUCKETS),
        "predictions": counter("predictions", "Predicted classes", ("class",)),
        "probability": histogram("predicted_probability", "Probability of the predicted class", PROBABILITY_BUCKETS),
        "input_rows": counter("input_rows", "Rows scored"),
        "missing": counter("input_missing", "Missing values per feature", ("feature",)),
        "out_of_range": counter("input_out_of_range", "Numbers outside the training range", ("feature",)),
        "unseen": counter("input_unseen", "Categories the training data never had", ("feature",)),
    }
    return _FAMILIES[id(registry)]


class ServingMetrics:
    """The series of one served version, in ``registry`` (prometheus_client's default in the runtime: the one
    MLServer's metrics endpoint serves when it runs without inference workers, as the ServingRuntime sets)."""

    def __init__(
        self, registry: Any, model: str, version: str, classes: Sequence[Any], profile: dict[str, Any] | None
    ) -> None:
        self.model, self.version = _label(model), _label(version)
        self.classes = [_label(c) for c in list(classes)[:MAX_CLASSES]]
        features = dict(list(((profile or {}).get("features") or {}).items())[:MAX_FEATURES])
        self.numeric = {
            name: (float(spec["edges"][0]), float(spec["edges"][-1]))
            for name, spec in features.items()
            if spec.get("kind") == "numeric" and spec.get("edges")
        }
        self.categorical = {
            name: {str(k) for k in (spec.get("counts") or {})}
            for name, spec in features.items()
            if spec.get("kind") == "categorical"
        }
        families = _families(registry)
        self.requests, self.duration, self.rows = families["requests"], families["duration"], families["rows"]
        self.predictions, self.probability = families["predictions"], families["probability"]
        self.input_rows, self.missing = families["input_rows"], families["missing"]
        self.out_of_range, self.unseen = families["out_of_range"], families["unseen"]
        # Every series exists from the start at 0: rate() and absent() see the version before its first request.
        for protocol in ("v2", "v1"):
            self.duration.labels(self.model, self.version, protocol)
            for outcome in ("ok", "error"):
                self.requests.labels(self.model, self.version, protocol, outcome)
        self.rows.labels(self.model, self.version)
        self.probability.labels(self.model, self.version)
        for name in [*self.classes, OTHER_CLASS]:
            self.predictions.labels(self.model, self.version, name)
        self.input_rows.labels(self.model, self.version)
        for feature in features:
            self.missing.labels(self.model, self.version, _label(feature))
        for feature in self.numeric:
            self.out_of_range.labels(self.model, self.version, _label(feature))
        for feature, known in self.categorical.items():
            if PROFILE_OTHER not in known:
                self.unseen.labels(self.model, self.version, _label(feature))

    def refused(self, protocol: str, seconds: float | None = None) -> None:
        self.requests.labels(self.model, self.version, protocol, "error").inc()
        if seconds is not None:
            self.duration.labels(self.model, self.version, protocol).observe(seconds)

    def observe(
        self,
        protocol: str,
        frame: pd.DataFrame,
        predicted: Sequence[Any],
        probabilities: Any,
        seconds: float | None = None,
    ) -> None:
        """One answered request: its inputs, predicted classes and class probabilities (rows × classes)."""
        labels = (self.model, self.version)
        self.requests.labels(*labels, protocol, "ok").inc()
        if seconds is not None:
            self.duration.labels(*labels, protocol).observe(seconds)
        rows = len(frame)
        self.rows.labels(*labels).observe(rows)
        self.input_rows.labels(*labels).inc(rows)
        known = set(self.classes)
        for value, count in pd.Series([_label(p) for p in predicted]).value_counts().items():
            self.predictions.labels(*labels, value if value in known else OTHER_CLASS).inc(int(count))
        matrix = np.asarray(probabilities, dtype=float)
        if matrix.ndim == 2 and len(matrix):
            for top in matrix.max(axis=1):
                if math.isfinite(top):
                    self.probability.labels(*labels).observe(float(top))
        for feature in set(self.numeric) | set(self.categorical):
            if feature not in frame.columns:
                self.missing.labels(*labels, _label(feature)).inc(rows)
                continue
            column = frame[feature]
            missing = column.isna()
            if missing.any():
                self.missing.labels(*labels, _label(feature)).inc(int(missing.sum()))
            if feature in self.numeric:
                low, high = self.numeric[feature]
                numbers = pd.to_numeric(column[~missing], errors="coerce")
                outside = int((numbers.isna() | (numbers < low) | (numbers > high)).sum())
                if outside:
                    self.out_of_range.labels(*labels, _label(feature)).inc(outside)
            elif PROFILE_OTHER not in self.categorical[feature]:
                keys = column[~missing].map(_category_key)
                unseen = int((~keys.isin(self.categorical[feature])).sum())
                if unseen:
                    self.unseen.labels(*labels, _label(feature)).inc(unseen)


def _category_key(value: Any) -> str:
    """As the profile keys categories (``drift.compare``): their text."""
    return str(value)

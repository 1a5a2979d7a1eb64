import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from gated_training.gate.metrics import MAX_ROC_POINTS, predict_labels_and_proba, score_model


def fitted(model, x, y):
    return model.fit(x, y)


def test_binary_scores_with_string_labels():
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=2000)})
    y = pd.Series(np.where(x["a"] + rng.normal(scale=0.5, size=2000) > 0, "yes", "no"))
    scores = score_model(fitted(LogisticRegression(), x, y), x, y)
    assert 0.8 < scores.accuracy < 1 and 0.8 < scores.f1 < 1 and 0.9 < scores.roc_auc <= 1
    assert scores.labels == ["no", "yes"]
    assert sum(map(sum, scores.confusion_matrix)) == 2000
    assert len(scores.roc_curve["fpr"]) <= MAX_ROC_POINTS
    assert all(0 <= t <= 1 for t in scores.roc_curve["thresholds"])  # no +inf in JSON


def test_multiclass_scores_and_undefined_auc():
    rng = np.random.default_rng(1)
    x = pd.DataFrame({"a": rng.normal(size=600)})
    y = pd.Series(np.digitize(x["a"], [-0.5, 0.5]))
    model = fitted(LogisticRegression(), x, y)
    scores = score_model(model, x, y)
    assert scores.roc_auc is not None and scores.roc_curve is None
    assert len(scores.confusion_matrix) == 3
    only_two_classes = y[y < 2]
    assert score_model(model, x.loc[only_two_classes.index], only_two_classes).roc_auc is None


def test_majority_baseline_scores():
    x = pd.DataFrame({"a": range(10)})
    y = pd.Series([1] * 7 + [0] * 3)
    scores = score_model(fitted(DummyClassifier(strategy="most_frequent"), x, y), x, y)
    assert scores.accuracy == pytest.approx(0.7)
    assert scores.roc_auc == pytest.approx(0.5)
    assert scores.headline() == {
        "accuracy": scores.accuracy,
        "balanced_accuracy": 0.5,
        "f1": scores.f1,
        "roc_auc": scores.roc_auc,
        "brier": pytest.approx(0.6),
    }  # one-hot on 1: 2 for each of 3 rows


class CountingTransform(StandardScaler):
    calls = 0

    def transform(self, x, copy=None):
        CountingTransform.calls += 1
        return super().transform(x, copy=copy)


def test_a_pipeline_is_transformed_once_for_labels_and_probabilities_with_the_same_results():
    rng = np.random.default_rng(2)
    x = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    y = pd.Series(np.digitize(x["a"] + x["b"], [-0.5, 0.5]))
    model = Pipeline([("scale", CountingTransform()), ("model", LogisticRegression())]).fit(x, y)
    CountingTransform.calls = 0
    labels, proba = predict_labels_and_proba(model, x)
    assert CountingTransform.calls == 1
    np.testing.assert_array_equal(labels, model.predict(x))
    np.testing.assert_array_equal(proba, model.predict_proba(x))
    plain = LogisticRegression().fit(x, y)
    np.testing.assert_array_equal(predict_labels_and_proba(plain, x)[1], plain.predict_proba(x))

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


def test_a_forests_answers_are_the_same_bits_on_every_run_and_in_any_batches():
    """sklearn's forests sum their trees' probabilities in threads in whatever order they finish; the gate sums
    each row's trees in tree order (rows split across threads), so two runs, or the rows cut into two batches
    (as Spark's workers see them), give the same bits, and predict is the forest's own argmax."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(6_000, 6)), columns=list("abcdef"))
    y = np.where(x["a"] + rng.normal(scale=1.5, size=len(x)) > 0, "yes", "no")
    forest = RandomForestClassifier(n_estimators=60, max_depth=8, n_jobs=-1, random_state=0).fit(x, y)
    runs = [predict_labels_and_proba(forest, x) for _ in range(6)]
    assert len({proba.tobytes() for _, proba in runs}) == 1
    predicted, proba = runs[0]
    halves = [predict_labels_and_proba(forest, part) for part in (x.iloc[:2_345], x.iloc[2_345:])]
    assert np.array_equal(np.vstack([p for _, p in halves]), proba)
    assert np.array_equal(predicted, forest.predict(x)) and np.allclose(proba, forest.predict_proba(x), atol=1e-12)


def test_scoring_a_model_that_is_not_a_forest_does_not_import_the_forests():
    """sklearn.ensemble costs 1.3 s to import: evaluate-model (and each Spark worker) scoring xgboost's booster or a
    linear model does not pay it to ask whether the model is a forest."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from gated_training.gate.metrics import predict_labels_and_proba\n"
        "x = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])\n"
        "labels, proba = predict_labels_and_proba(LogisticRegression().fit(x, y), x)\n"
        "assert list(labels) == [0, 0, 1, 1] and proba.shape == (4, 2)\n"
        "print('sklearn.ensemble' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False", result.stderr

"""The gate's statistics against reference implementations and hand-checkable cases."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

from gated_training import stats


def rows(seed: int, n: int = 300, classes: int = 2, agreement: float = 0.8):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    a = np.where(rng.random(n) < agreement, y, rng.integers(0, classes, n))
    b = np.where(rng.random(n) < agreement, y, rng.integers(0, classes, n))
    return y, a, b


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_confusion_metrics_are_sklearns(classes):
    y, a, _ = rows(classes, classes=classes)
    labels = list(range(classes))
    assert stats.confusion_metric("accuracy", y, a, classes) == pytest.approx(accuracy_score(y, a))
    assert stats.confusion_metric("balanced_accuracy", y, a, classes) == pytest.approx(balanced_accuracy_score(y, a))
    assert stats.confusion_metric("f1", y, a, classes) == pytest.approx(
        f1_score(y, a, average="macro", labels=labels, zero_division=0)
    )


def test_f1_counts_a_label_never_seen_as_zero_as_sklearn_does_with_labels():
    y, a = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    assert stats.confusion_metric("f1", y, a, 3) == pytest.approx(
        f1_score(y, a, average="macro", labels=[0, 1, 2], zero_division=0)
    )


def test_wilson_interval_known_values():
    low, high = stats.wilson_interval(0, 10, 0.05)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = stats.wilson_interval(5, 10, 0.05)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))


def test_exact_mcnemar_is_the_binomial_test_on_the_discordant_rows():
    assert stats.mcnemar_exact(6, 7) == pytest.approx(binomtest(6, 13, 0.5).pvalue) == pytest.approx(1.0)
    assert stats.mcnemar_exact(2, 15) == pytest.approx(binomtest(2, 17, 0.5).pvalue)
    assert stats.mcnemar_exact(0, 0) == 1.0


def test_holm_adjusts_step_down_and_keeps_the_order():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5]) == [0.5] and stats.holm([]) == []
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0]) and stats.holm([0.02, 0.3]) == pytest.approx([0.04, 0.3])


def test_one_row_better_on_200_rows_is_not_significant():
    """The issue's case: on 200 rows one row is 0.005, so max_regression=0.01 is two rows of noise."""
    y = np.array([0] * 100 + [1] * 100)
    champion = y.copy()
    champion[:30] = 1 - champion[:30]  # 30 wrong
    candidate = champion.copy()
    candidate[30:37] = 1 - candidate[30:37]  # 7 rows only the champion gets right
    candidate[0:8] = y[0:8]  # 8 rows only the candidate gets right: one row better overall
    comparison = stats.paired_confusion("accuracy", y, candidate, champion, 2, 0.05)
    assert (comparison.wins, comparison.losses) == (8, 7)
    assert comparison.difference == pytest.approx(0.005)
    assert comparison.p_value == pytest.approx(1.0) and comparison.low < 0 < comparison.high
    assert not comparison.improved and not comparison.significantly_worse
    assert comparison.minimum_detectable == pytest.approx(
        2.8016 * math.sqrt(15 / 200 - (1 / 200) ** 2) / math.sqrt(200), rel=1e-3
    )


def test_the_paired_bootstrap_is_seeded_and_agrees_with_a_row_bootstrap():
    y, a, b = rows(7, n=400)
    first = stats.paired_confusion("f1", y, a, b, 2, 0.05)
    again = stats.paired_confusion("f1", y, a, b, 2, 0.05)
    assert (first.low, first.high) == (again.low, again.high)
    # The cell multinomial is the row bootstrap: compare with resampling the rows themselves.
    rng = np.random.default_rng(1)
    diffs = []
    for _ in range(2000):
        index = rng.integers(0, len(y), len(y))
        diffs.append(f1_score(y[index], a[index], average="macro") - f1_score(y[index], b[index], average="macro"))
    low, high = np.quantile(diffs, [0.025, 0.975])
    assert first.low == pytest.approx(low, abs=0.01) and first.high == pytest.approx(high, abs=0.01)


def test_delong_matches_sklearns_auc_and_is_zero_for_identical_scores():
    rng = np.random.default_rng(3)
    positive = rng.random(500) < 0.3
    score_a = positive * 0.6 + rng.random(500)
    score_b = positive * 0.3 + rng.random(500)
    single = stats.delong_interval(positive, score_a, 0.05)
    assert single.estimate == pytest.approx(roc_auc_score(positive, score_a))
    assert single.low < single.estimate < single.high
    paired = stats.paired_delong(positive, score_a, score_b, 0.05)
    assert paired.difference == pytest.approx(roc_auc_score(positive, score_a) - roc_auc_score(positive, score_b))
    assert paired.p_value < 0.001 and paired.low > 0
    same = stats.paired_delong(positive, score_a, score_a, 0.05)
    assert same.difference == 0 and same.p_value == 1.0


def test_delong_standard_error_agrees_with_a_bootstrap():
    rng = np.random.default_rng(4)
    positive = rng.random(400) < 0.4
    score = positive * 0.5 + rng.random(400)
    single = stats.delong_interval(positive, score, 0.05)
    aucs = []
    for _ in range(1000):
        index = rng.integers(0, 400, 400)
        aucs.append(roc_auc_score(positive[index], score[index]))
    assert single.standard_error == pytest.approx(np.std(aucs), rel=0.15)


def test_brier_per_row_and_the_paired_mean():
    y = np.array([0, 1, 1])
    proba = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    assert stats.brier_per_row(y, proba).tolist() == [0.0, 0.5, 0.0]
    comparison = stats.paired_mean("brier", np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.1, 0.2, 0.3, 0.4]), 0.05)
    assert comparison.difference == 0 and comparison.p_value == 1.0


def test_expected_calibration_error_is_zero_for_a_calibrated_predictor_and_large_for_an_overconfident_one():
    rng = np.random.default_rng(5)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(int)
    calibrated = np.column_stack([1 - p, p])
    assert stats.expected_calibration_error(y, calibrated) < 0.02
    overconfident = np.column_stack([1 - (p > 0.5), (p > 0.5)]).astype(float)
    assert stats.expected_calibration_error(y, overconfident) > 0.2


def test_the_bootstrap_p_value_is_never_zero():
    assert stats.bootstrap_p_value(np.full(1999, 0.1)) == pytest.approx(2 / 2000)
    assert stats.bootstrap_p_value(np.array([])) == 1.0

"""Each model-gate check on a context built from answers: the decision rules, case by case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gated_training.config import GateThresholds
from gated_training.gate import Answers, ChampionView, GateContext, decide, run_checks
from gated_training.gate import checks as gate_checks
from gated_training.gate.metrics import score_predictions

TRAINING = {
    "overfit_gap": 0.01,
    "cv_accuracy_mean": 0.8,
    "cv_accuracy_std": 0.01,
    "train": {"accuracy": 0.8},
    "mlflow_run_id": "r",
    "tracking_uri": "sqlite://",
}


def answers(y: np.ndarray, codes: np.ndarray, proba: np.ndarray | None = None) -> Answers:
    return Answers(codes=codes, proba=proba, scores=score_predictions(pd.Series(y), codes, proba, np.array([0, 1])))


def context(
    y,
    candidate,
    *,
    champion=None,
    thresholds=GateThresholds(),
    features=None,
    segments=None,
    candidate_proba=None,
    champion_proba=None,
    drift=None,
) -> GateContext:
    y = np.asarray(y)
    majority = int(np.bincount(y).argmax())
    view = None
    if champion is not None:
        view = ChampionView(
            version="20260101T000000000000Z-00000001",
            rows=np.arange(len(y)),
            y=y,
            candidate=answers(y, candidate, candidate_proba),
            champion=answers(y, np.asarray(champion), champion_proba),
            note="same rows",
            segments=segments,
        )
    return GateContext(
        thresholds=thresholds,
        labels=[0, 1],
        y=y,
        candidate=answers(y, candidate, candidate_proba),
        baseline=answers(y, np.full(len(y), majority)),
        features=features if features is not None else pd.DataFrame({"x": np.zeros(len(y))}),
        training=TRAINING,
        metadata={},
        drift=drift,
        champion=view,
        champion_version=view.version if view else None,
        train_class_counts={"0": int(np.sum(y == 0)), "1": int(np.sum(y == 1))},
        trained=[0, 1],
    )


def by_name(ctx) -> dict:
    return {check.name: check for check in run_checks(ctx)}


def one_row_better(n: int = 200):
    y = np.array([0] * (n // 2) + [1] * (n // 2))
    champion = y.copy()
    champion[:30] = 1 - champion[:30]
    candidate = champion.copy()
    candidate[30:37] = 1 - candidate[30:37]
    candidate[0:8] = y[0:8]
    return y, candidate, champion


def test_a_majority_class_model_on_95_5_labels_is_blocked_naming_the_baseline():
    y = np.array([1] * 172 + [0] * 11)
    ctx = context(y, np.ones(183, dtype=int), thresholds=GateThresholds(min_accuracy=0.85))
    checks = by_name(ctx)
    assert checks["min_accuracy"].passed  # 0.94: accuracy alone would deploy it
    assert not checks["beats_prior_predictor"].passed and not checks["min_balanced_accuracy"].passed
    assert "no better than answering the most common class" in checks["beats_prior_predictor"].detail
    assert decide(list(checks.values())).decision == "block"


def test_a_model_with_signal_on_imbalanced_labels_beats_the_baseline():
    y = np.array([1] * 172 + [0] * 15)
    candidate = y.copy()
    candidate[:4] = 0  # 4 majority rows wrong
    candidate[-3:] = 1  # 3 of 15 minority rows missed
    checks = by_name(context(y, candidate, thresholds=GateThresholds(min_accuracy=0.85)))
    assert checks["beats_prior_predictor"].passed and checks["min_balanced_accuracy"].passed
    assert checks["beats_prior_predictor"].evidence["interval"][0] > 0


def test_one_row_better_on_200_is_not_significant_and_each_rule_decides():
    y, candidate, champion = one_row_better()
    default = by_name(context(y, candidate, champion=champion, thresholds=GateThresholds(min_accuracy=0.5)))
    check = default["not_worse_than_champion (accuracy)"]
    assert check.passed and check.evidence["verdict"] == "no significant difference"
    assert "8 rows only the candidate gets right, 7 only the champion" in check.detail
    assert "exact McNemar" in check.detail and "these rows detect a difference of ±" in check.detail
    strict = by_name(
        context(
            y,
            candidate,
            champion=champion,
            thresholds=GateThresholds(min_accuracy=0.5, comparison_rule="non_inferiority"),
        )
    )
    check = strict["not_worse_than_champion (accuracy)"]
    assert not check.passed and check.evidence["interval"][0] < -0.01
    # Swapped, the candidate is one row worse: within max_regression 0.01 and not significant: deploys.
    swapped = by_name(context(y, champion, champion=candidate, thresholds=GateThresholds(min_accuracy=0.5)))
    assert swapped["not_worse_than_champion (accuracy)"].passed


def test_a_worse_estimate_the_rows_cannot_tell_from_noise_deploys_with_a_warning_by_default():
    y = np.array([0, 1] * 86)  # 172 rows, as the sample's test split
    champion = y.copy()
    champion[:40] = 1 - champion[:40]
    candidate = champion.copy()
    candidate[40:46] = 1 - candidate[40:46]  # 6 more wrong
    candidate[0:4] = y[0:4]  # 4 fixed: 2 rows worse, -0.0116
    checks = by_name(context(y, candidate, champion=champion, thresholds=GateThresholds(min_accuracy=0.5)))
    assert checks["not_worse_than_champion (accuracy)"].passed
    warning = checks["max_regression (point estimate)"]
    assert warning.severity == "warning" and not warning.passed and not warning.blocks
    assert "the rows cannot tell it from noise" in warning.detail and "non_inferiority would block it" in warning.detail
    strict = by_name(
        context(
            y,
            candidate,
            champion=champion,
            thresholds=GateThresholds(min_accuracy=0.5, comparison_rule="non_inferiority"),
        )
    )
    assert not strict["not_worse_than_champion (accuracy)"].passed and "max_regression (point estimate)" not in strict


def test_a_small_regression_that_is_significant_is_blocked_by_default():
    n = 20000
    y = np.array([0, 1] * (n // 2))
    champion = y.copy()
    champion[: n // 10] = 1 - champion[: n // 10]  # 10% wrong
    candidate = champion.copy()
    candidate[n // 10 : n // 10 + 120] = 1 - candidate[n // 10 : n // 10 + 120]  # 120 more wrong: -0.006
    checks = by_name(context(y, candidate, champion=champion, thresholds=GateThresholds(min_accuracy=0.5)))
    check = checks["not_worse_than_champion (accuracy)"]
    assert check.value == pytest.approx(-0.006) and check.value > -0.01
    assert not check.passed and check.evidence["verdict"] == "significantly worse"


def test_improved_only_when_the_interval_is_above_zero():
    n = 2000
    y = np.array([0, 1] * (n // 2))
    champion = y.copy()
    champion[:400] = 1 - champion[:400]
    candidate = y.copy()
    candidate[:200] = 1 - candidate[:200]
    check = by_name(context(y, candidate, champion=champion))["not_worse_than_champion (accuracy)"]
    assert check.evidence["verdict"] == "improved" and check.evidence["interval"][0] > 0


def test_too_few_test_rows_decide_nothing_and_say_how_many_are_needed():
    y = np.array([0, 0, 0, 0, 1, 1])
    candidate = np.array([0, 0, 0, 0, 1, 0])
    checks = by_name(context(y, candidate, thresholds=GateThresholds(min_accuracy=0.5)))
    assert not checks["min_test_rows"].passed and not checks["min_test_rows_per_class"].passed
    assert "a decision needs at least 30 test rows and 5 of each class" in checks["min_test_rows"].detail
    assert "about 150 rows in the batch" in checks["min_test_rows"].detail


def test_min_class_recall_names_the_class_below_the_floor():
    y = np.array([0] * 50 + [1] * 50)
    candidate = y.copy()
    candidate[50:80] = 0  # class 1 recall 0.4
    check = by_name(context(y, candidate, thresholds=GateThresholds(min_accuracy=0.5, min_class_recall=0.6)))[
        "min_class_recall"
    ]
    assert not check.passed and check.value == pytest.approx(0.4) and "1: 0.4000 of 50 rows" in check.detail


def test_calibration_regression_is_judged_on_paired_brier_scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    sharp = np.column_stack([1 - (0.2 + 0.6 * y), 0.2 + 0.6 * y])
    flat = np.full((400, 2), 0.5)
    checks = by_name(
        context(
            y,
            y,
            champion=y,
            candidate_proba=flat,
            champion_proba=sharp,
            thresholds=GateThresholds(min_accuracy=0.5, max_calibration_regression=0.01),
        )
    )
    check = checks["max_calibration_regression"]
    assert not check.passed and check.value == pytest.approx(0.5 - 0.08)  # multiclass Brier: the sum over classes
    assert "Brier score 0.5000 vs champion 0.0800" in check.detail


def test_a_very_different_answer_mix_passes_only_when_shown_better():
    y = np.array([0, 1] * 100)
    champion = np.zeros(200, dtype=int)
    champion[:60] = y[:60]
    candidate = np.ones(200, dtype=int)
    candidate[:50] = y[:50]
    checks = by_name(
        context(
            y,
            candidate,
            champion=champion,
            thresholds=GateThresholds(
                min_accuracy=0.0, min_balanced_accuracy=0.0, max_regression=1.0, beat_prior_predictor=False
            ),
        )
    )
    assert not checks["max_prediction_psi"].passed and "not shown better" in checks["max_prediction_psi"].detail


def test_slices_are_compared_with_holm_and_the_worst_slice_is_named():
    rng = np.random.default_rng(1)
    n = 900
    y = rng.integers(0, 2, n)
    group = np.array(["a", "b", "c"] * (n // 3), dtype=object)
    champion = y.copy()
    candidate = y.copy()
    candidate[(group == "c") & (rng.random(n) < 0.4)] ^= 1  # the candidate breaks slice c
    candidate = candidate.astype(int)
    features = pd.DataFrame({"group": group})
    checks = by_name(
        context(
            y,
            candidate,
            champion=champion,
            features=features,
            thresholds=GateThresholds(min_accuracy=0.5, slice_by="group", max_regression=1.0),
        )
    )
    check = checks["slices_not_worse_than_champion"]
    assert not check.passed and "significantly worse than the champion in slice(s) group=c" in check.detail
    slices = {s["level"]: s for s in check.evidence["slices"]}
    assert slices["c"]["worse"] and not slices["a"]["worse"] and slices["a"]["adjusted_p_value"] == 1.0


def test_flips_concentrated_in_one_segment_are_flagged_as_a_warning_by_default():
    rng = np.random.default_rng(2)
    n = 600
    sex = rng.choice(["male", "female"], n)
    pclass = rng.choice(["1", "2", "3"], n)
    y = rng.integers(0, 2, n)
    champion = y.copy()
    candidate = y.copy()
    target = (sex == "female") & (pclass == "1")
    candidate[target] = 0  # the subgroup relabelled: the candidate learnt it, nowhere else
    features = pd.DataFrame({"sex": sex, "pclass": pclass})
    from gated_training.drift import segments

    definitions = segments.define(features, target="")
    ctx = context(
        y,
        candidate,
        champion=champion,
        features=features,
        segments=definitions,
        thresholds=GateThresholds(min_accuracy=0.5, max_regression=1.0),
    )
    check = by_name(ctx)["segment_flips"]
    assert not check.passed and check.severity == "warning" and "pclass=1, sex=female" in check.detail
    assert decide(run_checks(ctx)).warnings and "segment_flips" in decide(run_checks(ctx)).warnings[0]
    blocking = context(
        y,
        candidate,
        champion=champion,
        features=features,
        segments=definitions,
        thresholds=GateThresholds(min_accuracy=0.5, max_regression=1.0, segment_flip_action="block"),
    )
    assert by_name(blocking)["segment_flips"].blocks


def test_adding_a_check_is_one_function_and_one_entry():
    def always_blocks(ctx):
        yield gate_checks.Check(
            name="house_rule", value=None, threshold=None, comparison="==", passed=False, detail="the house says no"
        )

    y = np.array([0, 1] * 50)
    verdict = decide(
        run_checks(context(y, y, thresholds=GateThresholds(min_accuracy=0.5)), gate_checks.CHECKS + (always_blocks,))
    )
    assert verdict.decision == "block" and verdict.reasons == ["house_rule: n/a == n/a → FAIL (the house says no)"]

"""Drift checks on controlled synthetic drifts, and their false-positive rate on clean batches."""

import math

import numpy as np
import pytest

from gated_training.config import DriftPolicy
from gated_training.data.synthetic import DRIFTED_FEATURES, DRIFTS, TARGET, generate
from gated_training.drift.compare import compare, prediction_psi, profile_frame, psi

ROWS = 5000


@pytest.fixture(scope="module")
def reference_profile():
    return profile_frame(generate(ROWS, seed=1), TARGET, predictions=np.array([0] * 700 + [1] * 300))


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0
    small, large = psi([0.5, 0.5], [0.45, 0.55]), psi([0.5, 0.5], [0.1, 0.9])
    assert 0 < small < 0.05 < 0.2 < large


def test_profile_is_compact_and_leaves_the_target_out(reference_profile):
    features = reference_profile["features"]
    assert TARGET not in features and set(features) == {
        "income",
        "tenure_months",
        "support_calls",
        "region",
        "channel",
        "is_premium",
    }
    income = features["income"]
    assert income["kind"] == "numeric" and len(income["sample"]) == 1000 and len(income["counts"]) == 10
    assert sum(income["counts"]) == ROWS and income["null_fraction"] == 0
    assert features["region"]["kind"] == "categorical" and features["region"]["null_fraction"] > 0
    assert features["is_premium"]["kind"] == "categorical"
    assert reference_profile["predictions"] == {"0": 700, "1": 300}


@pytest.mark.parametrize("drift", DRIFTS)
def test_each_controlled_drift_flags_exactly_its_feature(reference_profile, drift):
    report = compare(reference_profile, generate(ROWS, seed=2, drift=drift))
    flagged = {f.feature for f in report.features if f.drifted}
    assert flagged == DRIFTED_FEATURES[drift], {f.feature: (round(f.psi, 3), f.p_value) for f in report.features}


def test_unseen_categories_are_named_and_counted(reference_profile):
    report = compare(reference_profile, generate(ROWS, seed=2, drift="new_categories"))
    channel = next(f for f in report.features if f.feature == "channel")
    unseen = next(s for s in channel.top_shifts if "unseen_levels" in s)
    assert unseen["unseen_levels"] == ["app", "reseller"] and 0.15 < unseen["batch_share"] < 0.25
    assert channel.psi > 0.2


def test_dataset_verdict_by_share_or_critical_feature(reference_profile):
    batch = generate(ROWS, seed=2, drift="mean_shift")
    lenient = {
        "drift_severe_psi": 0.0,
        "drift_severe_out_of_range": 0.0,
    }  # a one-sigma shift is severe (PSI 2.3) by default
    assert not compare(reference_profile, batch, DriftPolicy(**lenient)).drifted  # 1 of 6 features < 30 %
    critical = compare(reference_profile, batch, DriftPolicy(drift_critical_features="income", **lenient))
    assert critical.drifted and critical.reasons[0].startswith("critical feature income drifted")
    share = compare(reference_profile, batch, DriftPolicy(drift_max_drifted_share=0.1, **lenient))
    assert share.drifted and "1 of 6 features drifted" in share.reasons[0]
    severe = compare(reference_profile, batch)
    assert severe.drifted and severe.reasons == ["severe drift on feature income: PSI 2.26 >= drift_severe_psi 1"]


def test_out_of_range_share_is_measured_per_feature(reference_profile):
    batch = generate(ROWS, seed=2)
    batch.loc[: ROWS // 4, "tenure_months"] = 10_000.0  # a quarter of the rows far beyond the training range
    batch.loc[: ROWS // 10, "region"] = "atlantis"
    report = compare(reference_profile, batch)
    shares = {f.feature: f.out_of_range_share for f in report.features}
    assert shares["tenure_months"] == pytest.approx(0.25, abs=0.01) and shares["region"] == pytest.approx(0.1, abs=0.01)
    assert shares["income"] < 0.01
    assert {r.split(":")[0] for r in report.reasons if r.startswith("severe")} == {
        "severe drift on feature tenure_months",
        "severe drift on feature region",
    }


def test_a_missing_feature_counts_as_drifted(reference_profile):
    report = compare(reference_profile, generate(ROWS, seed=2).drop(columns=["income"]))
    income = next(f for f in report.features if f.feature == "income")
    assert income.drifted and income.test == "missing" and income.psi is None  # nothing measured, never "inf"
    assert report.missing_features == ["income"] and math.isfinite(report.max_psi)  # over the features present
    assert report.drifted and "feature income: missing from the batch" in report.reasons[0]


def test_prediction_psi_counts_labels_never_predicted_before():
    assert prediction_psi({"0": 700, "1": 300}, np.array([0] * 70 + [1] * 30)) == pytest.approx(0, abs=1e-9)
    assert prediction_psi({"0": 700, "1": 300}, np.array([0] * 30 + [1] * 70)) > 0.2
    assert prediction_psi({"0": 700, "1": 300}, np.array([2] * 100)) > 1


FALSE_POSITIVE_SEEDS = 40


def test_false_positive_rate_on_fresh_samples_of_the_same_distribution(reference_profile, capsys):
    """Clean batches from the reference distribution: the defaults must (almost) never flag."""
    feature_flags = dataset_flags = checks = 0
    for seed in range(100, 100 + FALSE_POSITIVE_SEEDS):
        report = compare(reference_profile, generate(ROWS, seed=seed))
        feature_flags += sum(f.drifted for f in report.features)
        checks += len(report.features)
        dataset_flags += report.drifted
    rate = feature_flags / checks
    with capsys.disabled():
        print(
            f"\n  drift false positives at the defaults: {feature_flags}/{checks} feature checks ({rate:.2%}), "
            f"{dataset_flags}/{FALSE_POSITIVE_SEEDS} batches, {ROWS} rows each"
        )
    assert dataset_flags == 0 and rate <= 0.01


def test_wide_generator_has_the_requested_mixed_schema_and_is_deterministic():
    from gated_training.data.synthetic import generate_wide

    frame = generate_wide(2000, columns=30, seed=3)
    assert frame.shape == (2000, 30) and frame.equals(generate_wide(2000, columns=30, seed=3))
    kinds = frame.drop(columns=[TARGET]).dtypes.map(
        lambda d: "bool" if d.kind == "b" else "number" if d.kind in "if" else "text"
    )
    assert set(kinds) == {"bool", "number", "text"}
    assert frame.isna().any().sum() >= 3  # missing values in numeric and categorical columns
    assert (frame["cat_2"] == "rare").mean() < 0.02  # a rare level
    with pytest.raises(ValueError, match="at least 7"):
        generate_wide(10, columns=5)


def test_the_report_shows_mass_beyond_the_reference_range_instead_of_a_taller_outer_bin(reference_profile):
    """A doubled amount used to be clipped into the outermost bin and look like a small shift."""
    from gated_training.drift.report import _plot, render_drift_html

    batch = generate(ROWS, seed=2)
    batch["tenure_months"] = batch["tenure_months"] * 2
    report = compare(reference_profile, batch)
    income = next(f for f in report.features if f.feature == "tenure_months")
    distribution = income.distribution
    assert distribution["above"] + distribution["below"] == pytest.approx(income.out_of_range_share)
    assert distribution["above"] > 0.3 and distribution["below"] < 0.01
    # In range plus beyond each end is the whole batch; the clipped shares (for PSI) are unchanged.
    assert sum(distribution["batch_in_range"]) + distribution["above"] + distribution["below"] == pytest.approx(1.0)
    assert sum(distribution["batch"]) == pytest.approx(1.0)
    assert distribution["batch"][-1] > distribution["batch_in_range"][-1] + 0.3
    outcome = {
        "decision": "block",
        "drifted": True,
        "drift_action": "block",
        "champion": "v1",
        "data_sha256": "ab",
        "reasons": [],
        "notes": [],
        "report": report.to_json(),
    }
    page = render_drift_html(outcome)
    assert f"<td>{income.out_of_range_share:.1%}</td>" in page and "outside the reference (range or categories)" in page
    assert _plot(report.to_json()["features"][[f.feature for f in report.features].index("tenure_months")])

"""Segments and the label-shift test, on the real sample (German credit)."""

import numpy as np
import pandas as pd
import pytest

from gated_training.config import DriftPolicy
from gated_training.drift import segments
from tests.conftest import SAMPLE_DATA


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DATA)


def test_segment_features_are_low_cardinality_columns_and_binned_numbers(credit):
    definitions = segments.define(credit, "risk")
    features = definitions["features"]
    assert features["sex"] == {"kind": "levels", "levels": ["female", "male"]}
    assert features["job"]["kind"] == "values" and features["job"]["levels"] == [0.0, 1.0, 2.0, 3.0]
    assert features["age"]["kind"] == "bins" and len(features["age"]["edges"]) == 3
    assert "risk" not in features and "purpose" in features  # 8 purposes: a segment feature
    assert ["housing", "sex"] in definitions["pairs"]
    levels = segments.levels(pd.Series([20, 30, 40, 70, None]), features["age"])
    assert levels.tolist()[-1] == segments.MISSING and len(set(levels.tolist()[:4])) == 4


def test_unknown_values_fall_into_other_and_pairs_cross_levels(credit):
    definitions = segments.define(credit, "risk")
    frame = pd.DataFrame({"sex": ["female", "robot"], "housing": ["own", "own"]})
    cells = {segments.describe(segment): int(mask.sum()) for segment, mask in segments.cells(frame, definitions)}
    assert cells["sex=(other)"] == 1 and cells["housing=own, sex=female"] == 1


def test_a_relabelled_subgroup_is_a_label_shift_named_by_its_segment(credit):
    profile = segments.label_profile(credit, "risk")
    batch = credit.copy()
    batch.loc[(batch["sex"] == "female") & (batch["housing"] == "own"), "risk"] = 0
    shifts = segments.label_shift(profile, batch, "risk", 0.01, 0.2)
    first = shifts[0]
    assert first.shifted and first.segment == "housing=own, sex=female"
    assert first.batch_share == 1.0 and first.adjusted_p_value < 1e-10
    assert "the share of risk=0 went from" in first.sentence("risk")


def test_fresh_samples_of_the_same_table_show_no_label_shift(credit):
    """The false-positive rate at the defaults: reference on one random half, the other half as the
    batch, 20 splits: no segment may be flagged (docs/gate.md records it)."""
    policy = DriftPolicy()
    flagged = 0
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(credit))
        reference, batch = credit.iloc[order[:500]], credit.iloc[order[500:]]
        shifts = segments.label_shift(
            segments.label_profile(reference, "risk"),
            batch,
            "risk",
            policy.drift_alpha,
            policy.label_shift_min_difference,
        )
        flagged += any(s.shifted for s in shifts)
    assert flagged == 0


def test_an_overall_class_balance_shift_is_found_too(credit):
    profile = segments.label_profile(credit, "risk")
    bad = credit[credit["risk"] == 0]
    batch = pd.concat([bad, bad, credit[credit["risk"] == 1].sample(300, random_state=0)])
    shifts = segments.label_shift(profile, batch, "risk", 0.01, 0.2)
    assert any(s.segment == "all rows" and s.shifted for s in shifts)

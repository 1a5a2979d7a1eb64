"""The drift gate decides on counts that add up across chunks (the Spark engine's partitions): the KS test
from counts is scipy's on the whole batch, bit for bit, and chunked tallies merge into the whole batch's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from gated_training.config import DriftPolicy
from gated_training.data import synthetic
from gated_training.drift import compare, compare_tallies, feature_tallies, merge_tallies, profile_frame
from gated_training.drift.segments import (
    batch_label_tallies,
    label_shift,
    label_shift_from_tallies,
    merge_label_tallies,
)
from gated_training.stats import ks_2samp_from_counts


@pytest.mark.parametrize("seed", range(40))
def test_the_ks_test_from_counts_is_scipys_on_the_whole_batch(seed):
    rng = np.random.default_rng(seed)
    n1 = int(rng.integers(5, 1000))
    n2 = int(rng.choice([1, 3, 50, 999, 9_999, 10_000, 10_001, 50_000]))
    if seed % 3 == 0:  # integers: ties inside and across the samples
        reference, batch = rng.integers(0, 20, n1).astype(float), rng.integers(0, 22, n2).astype(float) + seed % 2
    else:
        reference = rng.normal(size=n1).round(int(rng.integers(1, 5)))
        batch = rng.normal(loc=rng.normal() * 0.3, size=n2).round(int(rng.integers(1, 5)))
    points, ordered = np.unique(reference), np.sort(batch)
    below, at_or_below = np.searchsorted(ordered, points, "left"), np.searchsorted(ordered, points, "right")
    expected = stats.ks_2samp(reference, batch)
    assert ks_2samp_from_counts(reference, below, at_or_below, n2) == (expected.statistic, expected.pvalue)


@pytest.mark.parametrize("drift", [None, "mean_shift", "category_mix", "new_categories", "label_shift"])
def test_chunked_tallies_merge_into_the_whole_batchs_and_decide_alike(drift):
    profile = json.loads(json.dumps(profile_frame(synthetic.generate(8_000, seed=1), "churned")))
    batch = synthetic.generate(12_000, seed=2, drift=drift)
    chunks = np.array_split(np.arange(len(batch)), 5)
    merged: dict = {}
    labels = None
    for rows in chunks:
        chunk = batch.iloc[rows]
        merged = merge_tallies(merged, json.loads(json.dumps(feature_tallies(profile, chunk))))
        counted = batch_label_tallies(chunk, "churned", profile["labels"]["definitions"])
        labels = counted if labels is None else merge_label_tallies(labels, counted)
    assert merged == json.loads(json.dumps(feature_tallies(profile, batch)))
    policy = DriftPolicy()
    assert compare_tallies(profile, merged, len(batch), policy).to_json() == compare(profile, batch, policy).to_json()
    whole = label_shift(profile["labels"], batch, "churned", 0.01, 0.05, {"region"})
    assert label_shift_from_tallies(profile["labels"], labels, 0.01, 0.05, {"region"}) == whole

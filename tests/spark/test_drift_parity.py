"""The drift gate's counts on both engines: a batch's tallies against the champion's profile are equal, count
for count, whether pandas counts the whole frame or Spark counts each partition and adds them up; hence the
same report, the same label shifts and the same decision (clean, drifted, new categories, shifted labels,
numbers read as text, a missing feature, and a batch split across many partitions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gated_training.config import DriftPolicy
from gated_training.data import synthetic
from gated_training.drift import compare_tallies, profile_frame
from gated_training.drift.gate import tally_frame
from gated_training.drift.segments import label_shift_from_tallies
from gated_training.spark import drift_tallies

pytestmark = pytest.mark.spark
TARGET = "churned"


def batches():
    yield "clean", synthetic.generate(30_000, seed=2)
    for drift in ("mean_shift", "variance_change", "category_mix", "new_categories", "label_shift"):
        yield drift, synthetic.generate(30_000, seed=2, drift=drift)
    small = synthetic.generate(3_000, seed=4)  # exact KS (fewer than 10,000 values)
    small.loc[small.sample(frac=0.1, random_state=0).index, "income"] = np.nan
    yield "small-with-gaps", small
    text = synthetic.generate(5_000, seed=5)
    text["tenure_months"] = text["tenure_months"].astype(str).where(text.index % 7 != 0, "n/a")
    yield "numbers-as-text", text
    yield "missing-feature", synthetic.generate(5_000, seed=6).drop(columns=["region"])


@pytest.fixture(scope="module")
def profile():
    return json.loads(json.dumps(profile_frame(synthetic.generate(20_000, seed=1), TARGET)))


@pytest.mark.parametrize(("name", "frame"), list(batches()), ids=[name for name, _ in batches()])
def test_the_drift_gate_counts_alike_on_both_engines(spark, tmp_path, profile, name, frame):
    path = tmp_path / "batch.parquet"
    frame.to_parquet(path, index=False)
    import pandas as pd

    on_pandas = tally_frame(pd.read_parquet(path), profile, TARGET, [])
    on_spark = drift_tallies(spark.read.parquet(str(path)).repartition(7), profile, TARGET, [])
    assert on_spark.rows == on_pandas.rows == len(frame)
    assert json.loads(json.dumps(on_spark.features)) == json.loads(json.dumps(on_pandas.features))
    assert json.loads(json.dumps(on_spark.labels, sort_keys=True)) == json.loads(
        json.dumps(on_pandas.labels, sort_keys=True)
    )
    policy = DriftPolicy()
    reports = [compare_tallies(profile, t.features, t.rows, policy).to_json() for t in (on_pandas, on_spark)]
    assert reports[0] == reports[1]
    shifts = [
        [s.to_json() for s in label_shift_from_tallies(profile["labels"], t.labels, 0.01, 0.05)]
        for t in (on_pandas, on_spark)
    ]
    assert shifts[0] == shifts[1]
    if name == "mean_shift":
        assert reports[0]["drifted"]
    if name == "clean":
        assert not reports[0]["drifted"]
    if name == "missing-feature":
        assert reports[0]["missing_features"] == ["region"]

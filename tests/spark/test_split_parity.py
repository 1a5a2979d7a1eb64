"""The stable split on Spark: every row lands on the same side as on pandas (the same row hashes, the same
float64 threshold), whatever the partitioning, for content-hashed and key-hashed rules."""

from __future__ import annotations

import numpy as np
import pytest

from gated_training.data import in_test_split, rule_for, synthetic
from gated_training.spark import with_split_side

pytestmark = pytest.mark.spark


@pytest.mark.parametrize(("key", "partitions"), [("", 1), ("", 9), ("region", 4)])
def test_every_row_is_on_the_same_side_on_both_engines(spark, tmp_path, key, partitions):
    frame = synthetic.generate_wide(30_000, columns=30, seed=11)
    frame.loc[frame.sample(frac=0.03, random_state=2).index, "num_1"] = np.nan
    frame["row"] = np.arange(len(frame))
    path = tmp_path / "batch.parquet"
    frame.to_parquet(path, index=False)
    rule = rule_for(frame.drop(columns=["row"]), "churned", 0.2, key)
    expected = in_test_split(frame, rule)
    sides = (
        with_split_side(spark.read.parquet(str(path)).repartition(partitions), rule)
        .select("row", "__in_test")
        .toPandas()
        .sort_values("row")
    )
    assert np.array_equal(sides["__in_test"].to_numpy(), expected)
    if not key:  # a key column puts all its rows on one side: a few regions make a lumpy share
        assert 0.15 < expected.mean() < 0.25

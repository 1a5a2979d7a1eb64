"""The drift gate's tallies of a batch in Spark: each partition counts with the pandas engine's own functions
(``drift.feature_tallies``, ``segments.batch_label_tallies``), the driver adds the partitions' counts. The
counts add up exactly, so the gate decides on the same numbers as on pandas (the KS statistic and p-value
come from them by ``stats.ks_2samp_from_counts``, equal to scipy's on the whole batch)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pandas as pd

from gated_training.drift import BatchTallies, feature_tallies, merge_tallies, segments


def drift_tallies(frame: Any, profile: dict[str, Any], target: str, ignored: list[str]) -> BatchTallies:
    """The batch's ``BatchTallies`` against the champion's profile, in one pass over a Spark frame."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    profiled = [name for name in profile["features"] if name in frame.columns and name not in ignored]
    with_labels = "labels" in profile and target in frame.columns
    definitions = profile["labels"]["definitions"] if with_labels else None
    wanted = sorted(
        set(profiled) | set(definitions["features"] if definitions else ()) | ({target} if with_labels else set())
    )
    wanted = [name for name in wanted if name in frame.columns]
    schema = StructType([StructField("rows", LongType(), False), StructField("tallies", StringType(), False)])

    def count(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        rows, labels = 0, None
        features: dict[str, Any] = {}
        for batch in batches:
            rows += len(batch)
            features = merge_tallies(features, feature_tallies(profile, batch[profiled]))
            if definitions is not None:
                counted = segments.batch_label_tallies(batch, target, definitions)
                labels = counted if labels is None else segments.merge_label_tallies(labels, counted)
        if rows:
            yield pd.DataFrame({"rows": [rows], "tallies": [json.dumps({"features": features, "labels": labels})]})

    rows, labels = 0, None
    features: dict[str, Any] = {}
    for row in frame.select(*[f"`{name}`" for name in wanted]).mapInPandas(count, schema).toLocalIterator():
        part = json.loads(row["tallies"])
        rows += int(row["rows"])
        features = merge_tallies(features, part["features"])
        if part["labels"] is not None:
            labels = part["labels"] if labels is None else segments.merge_label_tallies(labels, part["labels"])
    if rows == 0:  # a batch the data gate passed has rows; an empty one compares as nothing measured
        return BatchTallies(rows=0, features={}, labels=None)
    return BatchTallies(rows=rows, features=features, labels=labels if with_labels else None)

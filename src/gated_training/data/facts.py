"""What the data gate's built-in checks need to know about a table, computed by either engine.

The built-in checks (``steps.validate_data.builtin_checks``) decide on these facts only, so the pandas
engine (:func:`table_facts`, here) and the Spark engine (``spark.facts``, one aggregation pass) reach the
same verdicts with the same words: each engine computes the numbers, one function judges them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gated_training.data.tables import json_safe, label_key

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_LISTED_CLASSES = 10


@dataclass(frozen=True, kw_only=True)
class ColumnFacts:
    name: str
    numeric: bool  # numbers, booleans not included (the infinity and range checks read only these)
    nulls: int
    distinct_with_null: int  # distinct values, a missing value counting as one; capped at 2 (only 0, 1 or more matter)
    infinite: int = 0
    overflowing: int = 0  # finite values beyond float32's range
    largest_overflow: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TableFacts:
    rows: int
    columns: list[ColumnFacts]
    target_nulls: int = 0
    target_class_count: int = 0
    target_classes: list[Any] = field(default_factory=list)  # the first MAX_LISTED_CLASSES, sorted by label_key

    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def sorted_classes(values: Any) -> list[Any]:
    """Classes in one order whatever the engine found them in: by their label key (``"1"``, ``"good"``)."""
    return sorted((json_safe(value) for value in values), key=lambda value: label_key(value))[:MAX_LISTED_CLASSES]


def table_facts(frame: pd.DataFrame, target: str) -> TableFacts:
    """The facts of a pandas frame (the pandas engine): one column at a time, no copy of the frame."""
    columns = []
    for name in frame.columns:
        series = frame[name]
        nulls = int(series.isna().sum())
        distinct = min(int(series.nunique(dropna=False)), 2)
        # select_dtypes("number") is what the infinity and range checks read: booleans are not numbers there.
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        infinite = overflowing = 0
        largest = 0.0
        if numeric:
            values = series.to_numpy(dtype=float, na_value=np.nan)
            infinite = int(np.isinf(values).sum())
            beyond = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
            overflowing = int(beyond.sum())
            largest = float(np.abs(values[beyond]).max()) if overflowing else 0.0
        columns.append(
            ColumnFacts(
                name=str(name),
                numeric=numeric,
                nulls=nulls,
                distinct_with_null=distinct,
                infinite=infinite,
                overflowing=overflowing,
                largest_overflow=largest,
            )
        )
    facts = TableFacts(rows=len(frame), columns=columns)
    if target in frame.columns:
        classes = frame[target].dropna().unique()
        facts = TableFacts(
            rows=len(frame),
            columns=columns,
            target_nulls=int(frame[target].isna().sum()),
            target_class_count=len(classes),
            target_classes=sorted_classes(classes),
        )
    return facts

"""A preprocessor fitted from its training columns' statistics.

What engineer-features' fitted preprocessor holds is a function of a few numbers per column: the two middle
values of a numeric column (its median is their mean, as numpy takes it), a categorical column's level counts
(its most frequent level, its levels, which levels a cap pools) and its missing count. :func:`fit_on_statistics`
fits the ``Pipeline`` on a small frame with exactly those statistics, and gives a capped encoder the real
counts, so the fitted object is the one a fit on every row would give.

Both engines fit this way: pandas from :func:`column_statistics` (a column at a time, no engineered matrix: a
``ColumnTransformer``'s ``fit`` is a ``fit_transform`` that builds the whole dense output only to drop it),
Spark from the same statistics computed in its workers (``spark.features``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gated_training.data.tables import label_key

# The dtypes whose statistics say everything the preprocessor's fit reads of them. Others (pandas' nullable and
# categorical dtypes, datetimes) are fitted on the rows themselves.
_SUMMARISED_KINDS = "iufb"


@dataclass(frozen=True, kw_only=True)
class ColumnStatistics:
    """What the preprocessor's fit reads of one training column."""

    name: str
    dtype: str  # the pandas dtype pandas' Parquet reader gives the column in the whole batch
    missing: int
    middle: tuple[float, float] | None = None  # numeric: the two middle values (equal for an odd count)
    levels: dict[Any, int] = field(default_factory=dict)  # categorical and flags: count per level


def summarisable(frame: pd.DataFrame) -> bool:
    """Whether every column's statistics describe it fully: NumPy numbers and booleans, and text (object or
    pandas' ``str``) holding only strings."""
    for name in frame.columns:
        dtype = frame[name].dtype
        if isinstance(dtype, np.dtype) and dtype.kind in _SUMMARISED_KINDS:
            continue
        if str(dtype) == "str":  # pandas' text dtype: strings or missing
            continue
        if isinstance(dtype, np.dtype) and dtype.kind == "O":
            levels = pd.unique(frame[name].dropna().to_numpy(dtype=object))
            if all(type(level) is str for level in levels):
                continue
        return False
    return True


def column_statistics(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> list[ColumnStatistics]:
    """The statistics of ``frame``'s columns, a column at a time (one column's copy at most)."""
    statistics: list[ColumnStatistics] = []
    for name in numeric:
        column = frame[name]
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        values = values[~np.isnan(values)]
        count = len(values)
        middle = None
        if count:
            lo, hi = (count - 1) // 2, count // 2
            values = np.partition(values, [lo, hi])
            middle = (float(values[lo]), float(values[hi]))
        statistics.append(
            ColumnStatistics(name=name, dtype=str(column.dtype), missing=len(column) - count, middle=middle)
        )
    for name in categorical:
        column = frame[name]
        counts = column.value_counts(dropna=True, sort=False)
        levels = {level: int(count) for level, count in counts.items() if count}
        missing = len(column) - sum(levels.values())
        statistics.append(ColumnStatistics(name=name, dtype=str(column.dtype), missing=missing, levels=levels))
    return statistics


def most_frequent(levels: dict[Any, int]) -> Any:
    """The level SimpleImputer(strategy="most_frequent") imputes: the most frequent, the smallest of a tie."""
    top = max(levels.values())
    return min(level for level, count in levels.items() if count == top)


def statistics_frame(statistics: list[ColumnStatistics], columns: list[str]) -> pd.DataFrame:
    """A frame of as few rows as the statistics need, whose columns have those statistics: a numeric column the
    same two middle values (so the same median), a categorical one every level, its most frequent one strictly
    the most frequent; dtypes as pandas reads the batch."""
    by_name = {s.name: s for s in statistics}
    needed = max([len(s.levels) + 2 for s in statistics if s.levels] + [2])
    rows = needed + needed % 2
    data: dict[str, Any] = {}
    for column in columns:
        s = by_name[column]
        if s.middle is not None:
            data[column] = pd.Series([s.middle[0], s.middle[1]] * (rows // 2), dtype=s.dtype)
        elif s.levels:
            mode = most_frequent(s.levels)
            others = sorted((level for level in s.levels if level != mode), key=label_key)
            values = [mode, mode, *others] + [mode] * (rows - len(others) - 2)
            data[column] = pd.Series(values, dtype=s.dtype)
        elif s.dtype.startswith("float"):  # every value missing
            data[column] = pd.Series([np.nan] * rows, dtype=s.dtype)
        else:
            data[column] = pd.Series([None] * rows, dtype="object" if s.dtype == "bool" else s.dtype)
    return pd.DataFrame(data, columns=columns)


def fit_on_statistics(preprocessor: Any, statistics: list[ColumnStatistics], columns: list[str], rows: int) -> Any:
    """Fit ``preprocessor`` (engineer_features.build_preprocessor's) as it would be fitted on the training rows
    these statistics describe. A capped encoder (max_categories, min_frequency) pools levels by their counts: it
    is given the real ones, as its own fit would have counted them (the missing rows count for the level the
    imputer fills in)."""
    frame = statistics_frame(statistics, columns)
    preprocessor.fit(frame)
    columns_step = preprocessor.named_steps["columns"]
    by_name = {s.name: s for s in statistics}
    for _group, transformer, names in columns_step.transformers_:
        encoder = transformer.named_steps.get("encode") if hasattr(transformer, "named_steps") else None
        if encoder is None or not getattr(encoder, "_infrequent_enabled", False):
            continue
        imputer = transformer.named_steps["impute"]
        kept = [str(n) for n in imputer.get_feature_names_out(names)]
        counts = []
        for name, categories in zip(kept, encoder.categories_):
            s = by_name[name]
            filled = dict(s.levels)
            filled[most_frequent(s.levels)] += s.missing
            counts.append(np.array([filled[c] for c in categories], dtype=np.int64))
        encoder._fit_infrequent_category_mapping(rows, counts, {})
        if hasattr(encoder, "_compute_n_features_outs"):  # one-hot: its output width follows the pooling
            encoder._set_drop_idx()
            encoder._n_features_outs = encoder._compute_n_features_outs()
    _record_output_indices(columns_step)
    return preprocessor


def _record_output_indices(columns_step: Any) -> None:
    """``ColumnTransformer.output_indices_`` (each group's output columns) for the groups' widths after the
    pooling above, as its own fit records them: in fitting order, an empty group's slice left empty."""
    recorded = columns_step.output_indices_
    names = {name: columns for name, _, columns in columns_step.transformers_}
    start = 0
    for group, where in list(recorded.items()):
        if where.stop == where.start:
            continue
        width = len(columns_step.named_transformers_[group].get_feature_names_out(names[group]))
        recorded[group] = slice(start, start + width)
        start += width

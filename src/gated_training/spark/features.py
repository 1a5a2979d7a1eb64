"""engineer-features on Spark: the stable split, the preprocessor's statistics and the leakage sample computed in
Spark, with the pandas engine's results bit for bit.

- **Order.** pandas reads a Parquet folder file by file in name order, each file's rows in order; the splits it
  writes keep that order, and train-model's early-stopping hold-out, CV folds and bins depend on it. Here each
  row carries its file and its row index in that file (Spark's ``_metadata``), so the splits are written in the
  same order and each row's place in its split is known.
- **Statistics.** What the fitted preprocessor holds is a function of a few numbers per column: the two middle
  values of a numeric column (its median is their mean, as numpy takes it), a categorical column's level counts
  (its most frequent level, its levels, which levels a cap pools) and its missing count. Spark computes them
  over the training split, and ``data.fit_on_statistics`` fits the preprocessor from them, as the pandas engine
  does from its own (the fitted object is the one a fit on every row would give).
- **The leakage sample.** ``gate.single_feature_scores`` looks at 20,000 rows of each split, drawn by
  ``DataFrame.sample(random_state=0)`` over the split's positions: the same positions are drawn here, and only
  those rows reach the driver.

pyspark is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from gated_training.data import ColumnStatistics, SplitRule
from gated_training.spark.hashing import with_split_side

FILE, ROW, IN_TEST, PART, LOCAL = "__file", "__row", "__in_test", "__part", "__local"
HELPERS = (FILE, ROW, IN_TEST, PART, LOCAL)


def ordered_split(frame: Any, rule: SplitRule) -> Any:
    """The batch read with each row's file and row index, its side of the split, sorted into pandas' order and
    cached: ``__part`` is the range partition (in order), ``__local`` the row's place among its side's rows in
    that partition."""
    from pyspark import TaskContext
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, LongType, StructField, StructType

    from gated_training.errors import DataError

    reserved = sorted({"_metadata", *HELPERS} & set(frame.columns))
    if reserved:
        raise DataError(f"column(s) {', '.join(reserved)}: names the Spark engine reserves; rename them in the batch")
    located = frame.select("*", F.col("_metadata.file_path").alias(FILE), F.col("_metadata.row_index").alias(ROW))
    sided = with_split_side(located, rule, IN_TEST).orderBy(FILE, ROW)
    schema = StructType(
        [*sided.schema.fields, StructField(PART, IntegerType(), False), StructField(LOCAL, LongType(), False)]
    )

    def number(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        context = TaskContext.get()  # always set inside a task; mypy sees it optional only where pyspark is installed
        part = context.partitionId() if context is not None else 0
        seen = {False: 0, True: 0}
        for batch in batches:
            side = batch[IN_TEST].to_numpy(dtype=bool)
            local = np.empty(len(batch), dtype=np.int64)
            for value in (False, True):
                rows = side == value
                local[rows] = seen[value] + np.arange(int(rows.sum()))
                seen[value] += int(rows.sum())
            yield batch.assign(**{PART: np.full(len(batch), part, dtype=np.int32), LOCAL: local})

    return sided.mapInPandas(number, schema).cache()


def side_offsets(ordered: Any) -> dict[tuple[int, bool], int]:
    """Where each partition's rows of each side start in that side: the first of a partition follows all the
    rows of that side in the partitions before it."""
    counts = {
        (int(r[PART]), bool(r[IN_TEST])): int(r["count"]) for r in ordered.groupBy(PART, IN_TEST).count().collect()
    }
    offsets: dict[tuple[int, bool], int] = {}
    running = {False: 0, True: 0}
    for part in sorted({part for part, _ in counts}):
        for side in (False, True):
            offsets[(part, side)] = running[side]
            running[side] += counts.get((part, side), 0)
    return offsets


def at_positions(rows: Any, column: str, wanted: np.ndarray) -> Any:
    """The rows whose ``column`` is in ``wanted``: a range filter for the first k positions, else a broadcast join
    with the positions (an ``isin`` of 200,000 literals costs Spark's planner tens of seconds)."""
    from pyspark.sql import functions as F

    if np.array_equal(wanted, np.arange(len(wanted))):
        return rows.filter(F.col(column) < F.lit(len(wanted)))
    session = rows.sparkSession
    positions = session.createDataFrame(pd.DataFrame({column: np.unique(wanted).astype(np.int64)}))
    return rows.join(F.broadcast(positions), on=column, how="inner")


def rows_at(ordered: Any, offsets: dict[tuple[int, bool], int], test: bool, positions: np.ndarray) -> pd.DataFrame:
    """The rows at ``positions`` of one side (as pandas' ``.iloc``), in that order, without the helper columns."""
    from pyspark.sql import functions as F

    wanted = np.asarray(positions, dtype=np.int64)
    starts = {part: start for (part, side), start in offsets.items() if side == test}
    position = F.col(LOCAL) + F.element_at(
        F.create_map(*[item for part, start in starts.items() for item in (F.lit(part), F.lit(start))]), F.col(PART)
    )
    picked = ordered.filter(F.col(IN_TEST) == F.lit(test)).withColumn("__position", position).drop(*HELPERS)
    picked = at_positions(picked, "__position", wanted).toPandas()
    order = {int(p): i for i, p in enumerate(wanted)}
    picked = picked.iloc[np.argsort([order[int(p)] for p in picked["__position"]], kind="stable")]
    return picked.drop(columns="__position").reset_index(drop=True)


def side(ordered: Any, test: bool) -> Any:
    """One side's rows, still in order: ``ordered`` is range-partitioned and sorted, and a filter keeps each
    partition's order, so a write gives part files that pandas reads back in the same order."""
    from pyspark.sql import functions as F

    return ordered.filter(F.col(IN_TEST) == F.lit(test)).drop(*HELPERS)


def pandas_dtypes(frame: Any, nulls: dict[str, int]) -> dict[str, str]:
    """The dtype pandas' Parquet reader gives each column of the whole batch: integers with a missing value are
    float64, booleans with one object, text pandas' default string dtype."""
    from pyspark.sql import types as T

    text = _text_dtype()
    dtypes = {}
    for column in frame.schema.fields:
        kind = column.dataType
        if isinstance(kind, (T.LongType, T.IntegerType, T.ShortType, T.ByteType)):
            dtypes[column.name] = "float64" if nulls[column.name] else _integer_dtype(kind)
        elif isinstance(kind, (T.DoubleType, T.FloatType)):
            dtypes[column.name] = "float64" if isinstance(kind, T.DoubleType) else "float32"
        elif isinstance(kind, T.BooleanType):
            dtypes[column.name] = "object" if nulls[column.name] else "bool"
        else:
            dtypes[column.name] = text
    return dtypes


def _integer_dtype(kind: Any) -> str:
    from pyspark.sql import types as T

    return {T.LongType: "int64", T.IntegerType: "int32", T.ShortType: "int16", T.ByteType: "int8"}[type(kind)]


def _text_dtype() -> str:
    """The dtype pandas' Parquet reader gives a text column (object, or pandas 3's str)."""
    import io

    buffer = io.BytesIO()
    pd.DataFrame({"x": pd.array(["x"], dtype=object)}).to_parquet(buffer)
    return str(pd.read_parquet(io.BytesIO(buffer.getvalue()))["x"].dtype)


def column_statistics(
    train: Any, numeric: list[str], categorical: list[str], dtypes: dict[str, str]
) -> list[ColumnStatistics]:
    """The training split's statistics per column (numeric: missing count and the two middle values; categorical:
    level counts and missing count), in as few Spark jobs as the columns allow."""
    from pyspark.sql import functions as F

    def present(column: str) -> Any:
        value = F.col(f"`{column}`")
        return value.isNotNull() & ~F.isnan(value) if dtypes[column].startswith("float") else value.isNotNull()

    statistics: list[ColumnStatistics] = []
    if numeric:
        counts = train.agg(*[F.count(F.when(present(c), 1)).alias(c) for c in numeric], F.count(F.lit(1)).alias("__n"))
        row = counts.collect()[0]
        total = int(row["__n"])
        quantiles = []
        for column in numeric:
            n = int(row[column])
            if n:
                # The lo-th and hi-th smallest values (0-based): percentile_disc halfway into each one's share of
                # the ranks, which no rounding of the share moves to a neighbour.
                lo, hi = (n - 1) // 2, n // 2
                quantiles.append((column, n, lo, hi))
        if quantiles:
            expressions = []
            for column, n, lo, hi in quantiles:
                name = column.replace("`", "``")
                numbers = f" FILTER (WHERE NOT isnan(`{name}`))" if dtypes[column].startswith("float") else ""
                for which, index in (("lo", lo), ("hi", hi)):
                    expressions.append(
                        F.expr(
                            f"percentile_disc({(index + 0.5) / n!r}) WITHIN GROUP (ORDER BY `{name}`){numbers}"
                        ).alias(f"{which}:{column}")
                    )
            middles = train.agg(*expressions).collect()[0]
        found = {column: n for column, n, _, _ in quantiles}
        for column in numeric:
            middle = (float(middles[f"lo:{column}"]), float(middles[f"hi:{column}"])) if column in found else None
            statistics.append(
                ColumnStatistics(name=column, dtype=dtypes[column], missing=total - found.get(column, 0), middle=middle)
            )
    for column in categorical:
        levels = {}
        missing = 0
        for row in train.groupBy(F.col(f"`{column}`").alias("level")).count().collect():
            if row["level"] is None:
                missing = int(row["count"])
            else:
                levels[row["level"]] = int(row["count"])
        statistics.append(ColumnStatistics(name=column, dtype=dtypes[column], missing=missing, levels=levels))
    return statistics


def class_moments(rows: Any, transform: Any, dtypes: dict[str, str], target: str, classes: list[Any]) -> Any:
    """Per class of ``target``: its rows, the sum of each engineered feature over them and the sum of each
    feature's square (float64, ``transform`` run on each batch in a Python worker), added up over the
    partitions: everything ``sklearn.feature_selection.f_classif`` computes its F statistics from."""
    from pyspark.sql.types import ArrayType, DoubleType, IntegerType, LongType, StructField, StructType

    codes = {str(label): code for code, label in enumerate(classes)}
    inputs = [name for name in dtypes if name != target]
    schema = StructType(
        [
            StructField("code", IntegerType(), False),
            StructField("rows", LongType(), False),
            StructField("sums", ArrayType(DoubleType(), False), False),
            StructField("squares", ArrayType(DoubleType(), False), False),
        ]
    )

    def moments(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if not len(batch):
                continue
            typed = batch[list(dtypes)].astype(dtypes)
            matrix = np.asarray(transform(typed[inputs]), dtype=np.float64)
            labels = np.array([codes[str(v)] for v in typed[target].tolist()], dtype=np.int64)
            present = np.unique(labels)
            yield pd.DataFrame(
                {
                    "code": present.astype(np.int32),
                    "rows": [int((labels == k).sum()) for k in present],
                    "sums": [matrix[labels == k].sum(axis=0) for k in present],
                    "squares": [np.square(matrix[labels == k]).sum(axis=0) for k in present],
                }
            )

    collected = rows.mapInPandas(moments, schema).toPandas()
    return collected


def anova_f(collected: pd.DataFrame, width: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``f_classif``'s F statistics and p-values from :func:`class_moments` (sklearn's ``f_oneway`` formula,
    term for term: only the order of the additions differs, so the scores agree to the last few bits)."""
    from scipy import special

    rows = np.zeros(classes, dtype=np.int64)
    sums = np.zeros((classes, width))
    squares = np.zeros(width)
    for code, count, total, square in collected[["code", "rows", "sums", "squares"]].itertuples(index=False):
        rows[code] += count
        sums[code] += np.asarray(total, dtype=np.float64)
        squares += np.asarray(square, dtype=np.float64)
    present = rows > 0
    rows, sums = rows[present], sums[present]
    n_samples, n_classes = int(rows.sum()), len(rows)
    square_of_sums_alldata = sums.sum(axis=0) ** 2
    sstot = squares - square_of_sums_alldata / float(n_samples)
    ssbn = (sums**2 / rows[:, None]).sum(axis=0) - square_of_sums_alldata / float(n_samples)
    sswn = sstot - ssbn
    dfbn, dfwn = n_classes - 1, n_samples - n_classes
    with np.errstate(divide="ignore", invalid="ignore"):
        f = (ssbn / float(dfbn)) / (sswn / float(dfwn))
    return np.asarray(f).ravel(), np.asarray(special.fdtrc(dfbn, dfwn, f)).ravel()

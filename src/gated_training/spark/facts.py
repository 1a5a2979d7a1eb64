"""The data gate's table facts (``data.TableFacts``) in one Spark aggregation: the same numbers the pandas
engine counts, so ``builtin_checks`` judges both alike."""

from __future__ import annotations

from typing import Any

from gated_training.data import FLOAT32_MAX, MAX_LISTED_CLASSES, ColumnFacts, TableFacts, sorted_classes

NUMERIC_TYPES = ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType", "DecimalType")
FLOATING_TYPES = ("FloatType", "DoubleType")


def table_facts(frame: Any, target: str) -> TableFacts:
    from pyspark.sql import functions as F

    kinds = {field.name: type(field.dataType).__name__ for field in frame.schema.fields}
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for index, name in enumerate(frame.columns):
        column = F.col(f"`{name}`")
        floating = kinds[name] in FLOATING_TYPES
        missing = (column.isNull() | F.isnan(column)) if floating else column.isNull()
        present = F.when(~missing, column)
        aggregates += [
            F.count(F.when(missing, 1)).alias(f"null{index}"),
            F.min(present).alias(f"min{index}"),
            F.max(present).alias(f"max{index}"),
        ]
        if kinds[name] in NUMERIC_TYPES:
            number = column.cast("double")
            infinite = F.abs(number) == F.lit(float("inf"))
            beyond = ~missing & ~infinite & (F.abs(number) > F.lit(FLOAT32_MAX))
            aggregates += [
                F.count(F.when(infinite, 1)).alias(f"inf{index}"),
                F.count(F.when(beyond, 1)).alias(f"over{index}"),
                F.max(F.when(beyond, F.abs(number))).alias(f"largest{index}"),
            ]
    has_target = target in frame.columns
    if has_target:
        aggregates.append(F.count_distinct(F.col(f"`{target}`")).alias("classes"))
    counts = frame.agg(*aggregates).collect()[0]
    rows = int(counts["rows"])
    columns = []
    for index, name in enumerate(frame.columns):
        nulls = int(counts[f"null{index}"])
        low, high = counts[f"min{index}"], counts[f"max{index}"]
        constant = nulls == rows or (nulls == 0 and low == high)
        numeric = kinds[name] in NUMERIC_TYPES
        columns.append(
            ColumnFacts(
                name=name,
                numeric=numeric,
                nulls=nulls,
                distinct_with_null=1 if constant else 2,
                infinite=int(counts[f"inf{index}"]) if numeric else 0,
                overflowing=int(counts[f"over{index}"]) if numeric else 0,
                largest_overflow=float(counts[f"largest{index}"] or 0.0) if numeric else 0.0,
            )
        )
    if not has_target:
        return TableFacts(rows=rows, columns=columns)
    labels = F.col(f"`{target}`")
    listed = (
        frame.select(labels.alias("label"))
        .where(labels.isNotNull())
        .distinct()
        .orderBy(F.col("label").cast("string"))
        .limit(MAX_LISTED_CLASSES)
        .collect()
    )
    return TableFacts(
        rows=rows,
        columns=columns,
        target_nulls=next(c.nulls for c in columns if c.name == target),
        target_class_count=int(counts["classes"]),
        target_classes=sorted_classes(row["label"] for row in listed),
    )

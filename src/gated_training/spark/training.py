"""train-model on Spark: the splits read in the pandas engine's row order, the engineered features computed by
the fitted preprocessor inside Spark's Python workers, the booster trained by ``xgboost.spark`` and scored in
Spark; only labels, probabilities and fixed samples reach the driver.

- **Order.** A split is a folder of part files that pandas reads file by file in name order, each file's rows in
  order. Every row here gets that position (:func:`positioned`), so a sample drawn over positions (the
  cross-validation rows, the pair-leakage rows, the serving example) is the pandas engine's sample row for row.
- **The learner.** ``SparkXGBClassifier`` trains one booster across ``workers`` barrier tasks, with the booster
  parameters ``boosted.booster_params`` gives the pandas engine. With one worker the booster is the pandas
  engine's bit for bit (``tests/spark/test_training_parity.py``); with more, each worker sketches its own
  quantiles, and the split points (and so the scores) differ slightly: the parity test states the tolerance.
- **The artifact.** The booster's bytes go into ``boosted.BoostedTrees`` behind the same fitted preprocessor: the
  same ``Pipeline`` the pandas engine deploys.

pyspark is imported inside functions only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from gated_training.spark.features import at_positions

POSITION = "__position"
FEATURES, CODE = "__features", "__code"
WORKERS_ENV = "GATED_TRAINING_SPARK_TRAIN_WORKERS"  # xgboost.spark's barrier tasks; default: the session's cores
PROBABILITY = "__p"


def positioned(frame: Any) -> Any:
    """``frame`` (read from Parquet) with each row's position in pandas' reading order (``POSITION``), cached."""
    from pyspark import TaskContext
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, LongType, StructField, StructType

    from gated_training.errors import DataError

    reserved = sorted({"_metadata", "__file", "__row", "__part", "__local", POSITION} & set(frame.columns))
    if reserved:
        raise DataError(f"column(s) {', '.join(reserved)}: names the Spark engine reserves; rename them in the batch")
    ordered = frame.select(
        "*", F.col("_metadata.file_path").alias("__file"), F.col("_metadata.row_index").alias("__row")
    ).orderBy("__file", "__row")
    schema = StructType(
        [*ordered.schema.fields, StructField("__part", IntegerType(), False), StructField("__local", LongType(), False)]
    )

    def number(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        context = TaskContext.get()
        part = context.partitionId() if context is not None else 0
        seen = 0
        for batch in batches:
            yield batch.assign(
                __part=np.full(len(batch), part, dtype=np.int32), __local=seen + np.arange(len(batch), dtype=np.int64)
            )
            seen += len(batch)

    numbered = ordered.mapInPandas(number, schema).cache()
    counts = dict(numbered.groupBy("__part").count().collect())
    starts, running = {}, 0
    for part in sorted(counts):
        starts[int(part)], running = running, running + int(counts[part])
    start = F.element_at(
        F.create_map(*[item for p, s in starts.items() for item in (F.lit(p), F.lit(s))]), F.col("__part")
    )
    located = numbered.withColumn(POSITION, F.col("__local") + (start if starts else F.lit(0)))
    return located.drop("__file", "__row", "__part", "__local").cache()


def labels_in_order(rows: Any, target: str) -> pd.Series:
    """The label column in pandas' order (the driver holds one value per row)."""
    from pyspark.sql import functions as F

    collected = rows.select(POSITION, F.col(f"`{target}`").alias("label")).toPandas()
    return collected.sort_values(POSITION, kind="stable")["label"].reset_index(drop=True).rename(target)


def read_split(session: Any, path: str, target: str) -> tuple[Any, dict[str, str], pd.Series]:
    """A split engineer-features wrote, read as the pandas engine reads it: the rows numbered in pandas' order
    (cached), each column's pandas type (from its null count) and the labels in order. train-model reads both
    splits and evaluate-model the test split with it."""
    from pyspark.sql import functions as F

    from gated_training.errors import DataError
    from gated_training.spark.features import pandas_dtypes
    from gated_training.spark.tables import spark_path

    frame = session.read.parquet(spark_path(path))
    if target not in frame.columns:
        raise DataError(f"target column {target!r} is not in the data (columns: {list(frame.columns)})")
    nulls = frame.agg(*[F.count(F.when(F.col(f"`{c}`").isNull(), 1)).alias(c) for c in frame.columns]).collect()[0]
    dtypes = pandas_dtypes(frame, {c: int(nulls[c]) for c in frame.columns})
    rows = positioned(frame)
    return rows, dtypes, labels_in_order(rows, target).astype(dtypes[target])


def rows_at(rows: Any, positions: np.ndarray, dtypes: dict[str, str]) -> pd.DataFrame:
    """The rows at ``positions`` (as pandas' ``.iloc``), in that order, typed as pandas' reader types them."""

    wanted = np.asarray(positions, dtype=np.int64)
    if not len(wanted):
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in dtypes.items()})
    picked = at_positions(rows, POSITION, wanted).toPandas()
    order = {int(p): i for i, p in enumerate(wanted)}
    picked = picked.iloc[np.argsort([order[int(p)] for p in picked[POSITION]], kind="stable")]
    return picked.drop(columns=POSITION).reset_index(drop=True).astype(dtypes)


def engineered(rows: Any, preprocessor: Any, target: str, classes: np.ndarray, dtypes: dict[str, str]) -> Any:
    """Each row's engineered features (float32, the preprocessor's own transform in a Python worker) as a vector,
    its label's code in ``classes`` and its position."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType, IntegerType, LongType, StructField, StructType

    codes = {str(label): code for code, label in enumerate(classes.tolist())}
    inputs = [name for name in dtypes if name != target]
    schema = StructType(
        [
            StructField(POSITION, LongType(), False),
            StructField(FEATURES, ArrayType(FloatType(), False), False),
            StructField(CODE, IntegerType(), False),
        ]
    )

    def transform(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if not len(batch):
                continue
            typed = batch.astype(dtypes)
            matrix = np.asarray(preprocessor.transform(typed[inputs]), dtype=np.float32)
            yield pd.DataFrame(
                {
                    POSITION: batch[POSITION].to_numpy(),
                    FEATURES: list(matrix),
                    # -1: a label the training split lacks (a test row's; scored by its label on the driver)
                    CODE: np.array([codes.get(str(v), -1) for v in typed[target].tolist()], dtype=np.int32),
                }
            )

    return rows.mapInPandas(transform, schema).select(POSITION, array_to_vector(F.col(FEATURES)).alias(FEATURES), CODE)


def training_workers(session: Any) -> int:
    """xgboost.spark's workers: ``GATED_TRAINING_SPARK_TRAIN_WORKERS``, else the session's default parallelism
    (``local[2]``: 2; a cluster: executors × cores)."""
    from gated_training.errors import ConfigError

    configured = os.environ.get(WORKERS_ENV, "").strip()
    if not configured:
        return max(1, int(session.sparkContext.defaultParallelism))
    if not configured.isdigit() or not 1 <= int(configured) <= 10_000:
        raise ConfigError(f"{WORKERS_ENV}={configured!r}: a whole number of workers from 1 to 10000")
    return int(configured)


def fit_booster(features: Any, params: dict[str, Any], rounds: int, types: list[str] | None, workers: int) -> bytes:
    """The booster ``xgboost.spark`` trains on ``features`` (``engineered``), as XGBoost's binary model."""
    from xgboost.spark import SparkXGBClassifier

    settings = {key: value for key, value in params.items() if key not in ("objective", "num_class", "seed")}
    learner = SparkXGBClassifier(
        features_col=FEATURES,
        label_col=CODE,
        num_workers=workers,
        n_estimators=rounds,
        random_state=params["seed"],
        feature_types=types,
        verbose=False,
        **settings,
    )
    model = learner.fit(features)
    return bytes(model.get_booster().save_raw("ubj"))


def probabilities(features: Any, model: Any, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's class probabilities from ``model`` (a fitted ``BoostedTrees``), scored in Spark's workers;
    returns the label codes and the probabilities in position order."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType, IntegerType, LongType, StructField, StructType

    schema = StructType(
        [
            StructField(POSITION, LongType(), False),
            StructField(CODE, IntegerType(), False),
            StructField(PROBABILITY, ArrayType(DoubleType(), False), False),
        ]
    )

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if not len(batch):
                continue
            matrix = np.stack(batch[FEATURES].to_numpy()).astype(np.float32).reshape(len(batch), width)
            yield pd.DataFrame(
                {
                    POSITION: batch[POSITION].to_numpy(),
                    CODE: batch[CODE].to_numpy(),
                    PROBABILITY: list(model.predict_proba(matrix)),
                }
            )

    arrays = features.select(POSITION, CODE, vector_to_array(F.col(FEATURES), "float32").alias(FEATURES))
    scored = arrays.mapInPandas(score, schema).toPandas().sort_values(POSITION, kind="stable")
    proba = np.stack(scored[PROBABILITY].to_numpy()) if len(scored) else np.empty((0, len(model.classes_)))
    return scored[CODE].to_numpy(dtype=np.int64), proba

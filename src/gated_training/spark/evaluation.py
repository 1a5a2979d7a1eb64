"""evaluate-model on Spark: the test split stays in Spark; each model scores it in Spark's Python workers and the
driver receives, per row, only what the gate's statistics are computed from.

- **Order.** Rows carry their position in pandas' reading order (``training.positioned``), so every array the
  driver assembles is the pandas engine's, row for row, and the gate (``gated_training.gate``) runs unchanged.
- **What the driver holds.** Per test row: the label, each model's predicted class and its probabilities
  (8 bytes per class and model), whether the champion's split rule held the row out, and the few columns
  the gate slices or segments by. Never the feature table.
- **Why not only aggregates.** The confusion matrices, slices and segment tallies are sums, but the gate's paired
  ROC AUC comparison (DeLong) places every candidate score against every champion score, and its macro-AUC and
  F1 intervals are bootstraps over rows: their exact values need every row's answer. Histogram sketches would
  move an interval at the boundary and so, rarely, a decision; the engines must decide alike (docs/scaling.md).
- **Errors.** A model that fails on the rows (the champion after a schema change) is caught in the worker and
  its own message comes back, so the gate records the same ``champion_problem`` text on both engines.

pyspark is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from gated_training.data import SplitRule, in_test_split
from gated_training.errors import DataError
from gated_training.spark.features import at_positions
from gated_training.spark.training import POSITION, read_split

CODE, PROBABILITY, ERROR, HELD_OUT = "__code", "__p", "__error", "__held_out"
MAX_ERROR_CHARS = 500


class ScoringFailed(Exception):
    """A model raised on the test rows inside a worker; ``str()`` is its own message, as on pandas."""


class SparkTestSplit:
    """The test split read by Spark, as ``steps.evaluate_model`` reads a test split (``TestSplit``)."""

    def __init__(self, session: Any, path: str, target: str) -> None:
        self.rows, self.dtypes, self.y = read_split(session, path, target)
        self.target = target
        self.columns = [c for c in self.dtypes if c != target]

    def close(self) -> None:
        self.rows.unpersist()

    def _typed(self) -> Any:
        """A function typing a worker's batch as pandas types the feature columns (it must not close over
        ``self``: the rows' DataFrame cannot travel to a worker)."""
        drop, types = [POSITION, self.target], {c: self.dtypes[c] for c in self.columns}

        def typed(batch: pd.DataFrame) -> pd.DataFrame:
            return batch.drop(columns=drop).astype(types)

        return typed

    def frame(self, names: list[str]) -> pd.DataFrame:
        """The columns ``names`` of every row in pandas' order, typed as pandas' reader types them."""
        wanted = [name for name in self.columns if name in set(names)]
        collected = self.rows.select(POSITION, *[f"`{name}`" for name in wanted]).toPandas()
        ordered = collected.sort_values(POSITION, kind="stable").drop(columns=POSITION).reset_index(drop=True)
        return ordered.astype({name: self.dtypes[name] for name in wanted})

    def held_out(self, rule: SplitRule | None) -> np.ndarray | None:
        """``data.held_out_by`` on every row, each partition deciding with ``data.in_test_split`` itself."""
        from pyspark.sql.types import BooleanType, LongType, StructField, StructType

        if rule is None or any(c not in self.columns for c in rule.columns):
            return None
        schema = StructType([StructField(POSITION, LongType(), False), StructField(HELD_OUT, BooleanType(), False)])
        typed = self._typed()

        def side(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                if len(batch):
                    yield pd.DataFrame(
                        {POSITION: batch[POSITION].to_numpy(), HELD_OUT: in_test_split(typed(batch), rule)}
                    )

        flags = self.rows.mapInPandas(side, schema).toPandas().sort_values(POSITION, kind="stable")
        return flags[HELD_OUT].to_numpy(dtype=bool)

    def score(self, model: Any, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``gate.predict_labels_and_proba(model, x.iloc[rows])`` with the rows in Spark: each model's predicted
        labels and probabilities, in ``rows``' order (every row when None). Raises :class:`ScoringFailed`."""
        from pyspark.sql.types import ArrayType, DoubleType, IntegerType, LongType, StringType, StructField, StructType

        from gated_training.gate import predict_labels_and_proba

        classes = list(model.classes_)
        schema = StructType(
            [
                StructField(POSITION, LongType(), False),
                StructField(CODE, IntegerType(), False),
                StructField(PROBABILITY, ArrayType(DoubleType(), False), True),
                StructField(ERROR, StringType(), True),
            ]
        )
        typed = self._typed()

        def answer(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            index = pd.Index(classes)
            for batch in batches:
                if not len(batch):
                    continue
                try:
                    predicted, proba = predict_labels_and_proba(model, typed(batch))
                    codes = index.get_indexer(predicted)
                    if (codes < 0).any():
                        raise ValueError("the model predicted a label outside its classes_")
                except Exception as exc:  # the model's own words, returned as data (see the module's docstring)
                    yield pd.DataFrame(
                        {POSITION: [-1], CODE: [-1], PROBABILITY: [None], ERROR: [str(exc)[:MAX_ERROR_CHARS]]}
                    )
                    return
                yield pd.DataFrame(
                    {
                        POSITION: batch[POSITION].to_numpy(),
                        CODE: codes.astype(np.int32),
                        PROBABILITY: list(proba) if proba is not None else [None] * len(batch),
                        ERROR: [None] * len(batch),
                    }
                )

        expected = np.arange(len(self.y)) if rows is None else np.asarray(rows, dtype=np.int64)
        if not len(expected):  # no rows to send: the model answers an empty frame as it does on pandas
            empty = pd.DataFrame({c: pd.Series(dtype=self.dtypes[c]) for c in self.columns})
            return predict_labels_and_proba(model, empty)
        source = self.rows if rows is None else at_positions(self.rows, POSITION, expected)
        answers = source.mapInPandas(answer, schema).toPandas()
        failed = answers[ERROR].dropna()
        if len(failed):
            raise ScoringFailed(str(failed.iloc[0]))
        answers = answers.set_index(POSITION)
        if len(answers) != len(expected) or not answers.index.is_unique:
            raise DataError(f"the Spark workers answered {len(answers)} of {len(expected)} test rows")
        answers = answers.loc[expected]
        predicted = np.asarray(model.classes_)[answers[CODE].to_numpy()]
        if answers[PROBABILITY].isna().any():
            return predicted, None
        return predicted, np.stack(answers[PROBABILITY].to_numpy())

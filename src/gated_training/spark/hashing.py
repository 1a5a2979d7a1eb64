"""Row hashes on Spark, bit for bit the pandas engine's (``data.row_hashes``): each partition's rows are
hashed by the same function through ``mapInPandas``, and a row's hash depends on the row alone, so the
content fingerprint and the stable split agree across engines whatever the partitioning."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gated_training.data import SplitRule, in_test_split, row_hashes

SIGN = np.uint64(1 << 63)


def _hash_column(frame: Any, columns: Sequence[str], name: str) -> Any:
    """``frame`` with ``name``: each row's hash of ``columns`` as a signed long whose order is the hash's
    unsigned order (the sign bit flipped), for a sort in Spark."""
    from pyspark.sql.types import LongType, StructField, StructType

    names = sorted(columns, key=str)
    schema = StructType([*frame.schema.fields, StructField(name, LongType(), False)])

    def add_hash(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            keys = (row_hashes(batch, names) ^ SIGN).view(np.int64)
            yield batch.assign(**{name: keys})

    return frame.mapInPandas(add_hash, schema)


def content_sha256(frame: Any) -> str:
    """``data.content_sha256`` computed in Spark: the sorted row hashes are range-partitioned, each
    partition packed into one blob in order, and the driver digests the blobs one at a time (it never
    holds more than one partition's hashes)."""
    from pyspark.sql.types import BinaryType, LongType, StructField, StructType

    digest = hashlib.sha256()
    digest.update("\x1f".join(sorted(map(str, frame.columns))).encode())
    keyed = _hash_column(frame, frame.columns, "__key").select("__key")
    partitions = max(1, frame.rdd.getNumPartitions())

    def pack(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        parts = [batch["__key"].to_numpy(dtype=np.int64) for batch in batches]
        if not parts:
            return
        keys = np.sort(np.concatenate(parts))
        if len(keys):
            hashes = keys.view(np.uint64) ^ SIGN
            yield pd.DataFrame({"first": [int(keys[0])], "blob": [hashes.astype("<u8").tobytes()]})

    schema = StructType([StructField("first", LongType(), False), StructField("blob", BinaryType(), False)])
    packed = keyed.repartitionByRange(partitions, "__key").mapInPandas(pack, schema).orderBy("first")
    for row in packed.toLocalIterator():
        digest.update(bytes(row["blob"]))
    return digest.hexdigest()


def with_split_side(frame: Any, rule: SplitRule, name: str = "__in_test") -> Any:
    """``frame`` with a boolean ``name``: whether the row is a test row under ``rule``, decided in each
    partition by ``data.in_test_split`` itself (the same hash, the same float64 threshold)."""
    from pyspark.sql.types import BooleanType, StructField, StructType

    schema = StructType([*frame.schema.fields, StructField(name, BooleanType(), False)])

    def add_side(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield batch.assign(**{name: in_test_split(batch, rule)})

    return frame.mapInPandas(add_side, schema)

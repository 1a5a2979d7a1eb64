"""Load the incoming table once, with errors that name the file and the byte or column."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from gated_training import storage
from gated_training.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class LoadedTable:
    frame: pd.DataFrame
    uri: str
    sha256: str  # of the raw bytes: the data's content fingerprint
    size_bytes: int


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _describe_decode_error(uri: str, raw: bytes, exc: UnicodeDecodeError) -> str:
    line = raw.count(b"\n", 0, exc.start) + 1
    bad = raw[exc.start : exc.end].hex(" ")
    return (
        f"{uri}: not valid UTF-8 at byte {exc.start} (line {line}): bytes {bad}. "
        "Re-encode the file as UTF-8 (for example `iconv -f latin1 -t utf-8`)."
    )


def parse_table(uri: str, raw: bytes) -> pd.DataFrame:
    """Parse CSV or Parquet bytes into a frame; every failure names ``uri``."""
    if not raw.strip():
        raise DataError(f"{uri}: the file is empty")
    suffix = PurePosixPath(uri).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(io.BytesIO(raw))
        except Exception as exc:  # pyarrow raises several unrelated types
            raise DataError(f"{uri}: not a readable Parquet file: {exc}") from exc
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(_describe_decode_error(uri, raw, exc)) from exc
        header = next(csv.reader(io.StringIO(text)), [])
        duplicated_header = sorted({name for name in header if header.count(name) > 1})
        if duplicated_header:  # pandas would silently rename them to "a.1"
            raise DataError(f"{uri}: duplicate column names {duplicated_header} in the header")
        try:
            frame = pd.read_csv(io.StringIO(text))
        except pd.errors.ParserError as exc:
            raise DataError(f"{uri}: not a well-formed CSV file: {exc}") from exc
        except pd.errors.EmptyDataError as exc:
            raise DataError(f"{uri}: the file has no header and no rows") from exc
    if frame.shape[1] == 0:
        raise DataError(f"{uri}: the file has no columns")
    if frame.empty:
        raise DataError(f"{uri}: the file has a header ({', '.join(map(str, frame.columns))}) but no rows")
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataError(f"{uri}: duplicate column names {duplicated}")
    return normalise_string_columns(frame)


def normalise_string_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Store text columns as ``object``.

    pandas 3 reads text as ``StringDtype(na_value=nan)``, which GX 1.x reports as "str" but
    cannot match in ``expect_column_values_to_be_in_type_list``; ``object`` round-trips.
    ``astype(object)`` would create one Python string per cell (about 73 bytes each: 580 MiB
    for 1M rows x 8 text columns); here each cell points to one string per distinct value,
    with the same values and the same missing marker.
    """
    result = None
    for column in frame.columns:
        dtype = frame[column].dtype
        if isinstance(dtype, pd.StringDtype):
            codes, uniques = pd.factorize(frame[column])  # missing values get code -1 ...
            values = np.append(np.asarray(uniques, dtype=object), dtype.na_value)[codes]  # ... which picks the marker
            result = frame.copy(deep=False) if result is None else result
            result[column] = pd.Series(values, index=frame.index, dtype=object, copy=False)
    return frame if result is None else result


def detached_head(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows in buffers of their own, so keeping them does not keep ``frame``.

    ``head(n).copy()`` is not enough: pandas 3's default text columns are Arrow arrays, which
    copy by reference, so a 5-row copy would hold every row's strings (60 MiB at 800k rows x
    8 text columns). ``take`` gathers the rows into new buffers.
    """
    return frame.take(np.arange(min(rows, len(frame))))


def load_table(uri: str) -> LoadedTable:
    """Read ``uri`` (local path or gs://, CSV or Parquet) into a frame with its fingerprint."""
    raw = storage.read_bytes(uri)
    frame = parse_table(uri, raw)
    return LoadedTable(frame=frame, uri=uri, sha256=sha256_hex(raw), size_bytes=len(raw))


def write_parquet(frame: pd.DataFrame, path: str) -> None:
    frame.to_parquet(path, index=False)


def read_parquet(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def is_numeric_feature(series: pd.Series) -> bool:
    """Numbers are numeric features; strings, categories and booleans are categorical."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def split_features_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise DataError(f"target column {target!r} is not in the data (columns: {list(frame.columns)})")
    return frame.drop(columns=[target]), frame[target]


def json_safe(value: object) -> object:
    """Turn numpy/pandas scalars and non-finite floats into JSON-serialisable values."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()  # numpy scalar → python scalar
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value

"""Load the incoming table once, with errors that name the file and the byte or column."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Callable

import numpy as np
import pandas as pd

from gated_training.config import DEFAULT_MAX_INPUT_MB, max_input_bytes
from gated_training.data import storage
from gated_training.errors import DataError
from gated_training.timing import mark_first_read

PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True, kw_only=True)
class LoadedTable:
    frame: pd.DataFrame
    uri: str
    sha256: str  # content fingerprint (content_sha256): format-, order- and BOM-insensitive
    file_sha256: str  # of the raw bytes, as stored
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


COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}
UNSUPPORTED_COMPRESSIONS = (".zip", ".zst", ".tar", ".7z")


def table_format(uri: str) -> tuple[str, str | None]:
    """``("csv" | "parquet", compression or None)`` from the name: ``x.csv.gz`` → ``("csv", "gzip")``."""
    path = PurePosixPath(uri.split("?", 1)[0])
    suffixes = [suffix.lower() for suffix in path.suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if suffixes and suffixes[-1] in UNSUPPORTED_COMPRESSIONS:
        raise DataError(
            f"{uri}: {suffixes[-1]} archives are not read; use a plain, .gz, .bz2 or .xz CSV or a Parquet file"
        )
    body = suffixes[:-1] if compression else suffixes
    return ("parquet" if body and body[-1] in PARQUET_SUFFIXES else "csv"), compression


def decompress(uri: str, raw: bytes, compression: str, max_bytes: int | None) -> bytes:
    """Decompress at most ``max_bytes`` (a small file that inflates without end is refused)."""
    import bz2
    import gzip
    import lzma

    openers: dict[str, Callable[..., Any]] = {"gzip": gzip.open, "bz2": bz2.open, "lzma": lzma.open}
    opener = openers[compression]
    try:
        with opener(io.BytesIO(raw), "rb") as stream:
            data = stream.read(-1 if max_bytes is None else max_bytes + 1)
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DataError(f"{uri}: not a readable {compression} file: {exc}") from exc
    if max_bytes is not None and len(data) > max_bytes:
        raise DataError(
            f"{uri}: decompresses to more than the limit of {max_bytes:,} bytes (max_input_mb={max_bytes / 2**20:.4g})"
        )
    return data


def _read_parquet_bytes(uri: str, raw: bytes) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises several unrelated types
        raise DataError(f"{uri}: not a readable Parquet file: {exc}") from exc
    nested = [f"{field.name} ({field.type})" for field in table.schema if pa.types.is_nested(field.type)]
    if nested:
        raise DataError(
            f"{uri}: nested Parquet columns cannot be features: {', '.join(nested)}; flatten them "
            "into one column per value"
        )
    # Each Arrow column is freed once converted, and each column is its own block (see read_parquet).
    return table.to_pandas(self_destruct=True, split_blocks=True)


def parse_table(uri: str, raw: bytes, max_bytes: int | None = None) -> pd.DataFrame:
    """Parse CSV or Parquet bytes (optionally .gz/.bz2/.xz) into a frame; every failure names ``uri``."""
    kind, compression = table_format(uri)
    if compression:
        raw = decompress(uri, raw, compression, max_bytes)
    if not raw.strip():
        raise DataError(f"{uri}: the file is empty")
    if kind == "parquet":
        frame = _read_parquet_bytes(uri, raw)
    else:
        try:
            text = raw.decode("utf-8-sig")  # a byte-order mark is not part of the first column's name
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
        frame = _integers_beyond_uint64_as_text(frame)
    if frame.shape[1] == 0:
        raise DataError(f"{uri}: the file has no columns")
    if frame.empty:
        raise DataError(f"{uri}: the file has a header ({', '.join(map(str, frame.columns))[:500]}) but no rows")
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise DataError(f"{uri}: duplicate column names {duplicated}")
    return normalise_string_columns(frame)


def _integers_beyond_uint64_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """pandas' reader keeps an integer beyond uint64 (``99999999999999999999``) as a Python int in an object
    column, which Parquet cannot store (the step crashed with OverflowError): such a column becomes text."""
    for column in frame.columns:
        series = frame[column]
        if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
            frame[column] = series.map(
                lambda value: value if value is None or isinstance(value, (str, float)) else str(value)
            )
    return frame


def _canonical_column(series: pd.Series) -> pd.Series:
    """One column as :func:`canonical_frame` holds it: numbers (and booleans) as float64, anything else as text
    with one missing marker."""
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return pd.to_numeric(series, errors="coerce").astype("float64")
    text = series.astype(object)
    return text.where(text.notna(), None)


def canonical_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The same table whatever its file format: columns sorted by name, numbers (and booleans) as
    float64, everything else as text with one missing marker. Equal content, equal frame."""
    columns = {str(name): _canonical_column(frame[name]) for name in sorted(frame.columns, key=str)}
    return pd.DataFrame(columns, index=frame.index)


def row_hashes(frame: pd.DataFrame, columns: Sequence[Any] | None = None) -> np.ndarray:
    """One stable 64-bit hash per row of :func:`canonical_frame` of ``frame[columns]`` (all columns by default):
    exactly ``pd.util.hash_pandas_object(canonical_frame(...), index=False)`` (pandas' fixed-key SipHash per
    column, combined as CPython combines a tuple's hashes), computed a column at a time, so neither the
    canonical frame nor the selected columns are ever copied whole (at 1M rows x 30 columns that copy was
    the split's memory peak)."""
    names = sorted(frame.columns if columns is None else columns, key=str)
    combined = np.full(len(frame), 0x345678, dtype=np.uint64)
    multiplier = np.uint64(1000003)
    for position, name in enumerate(names):
        combined ^= pd.util.hash_array(_canonical_column(frame[name]).to_numpy())
        combined *= multiplier
        remaining = len(names) - position
        multiplier += np.uint64(82520 + remaining + remaining)
    combined += np.uint64(97531)
    return combined


def content_sha256(frame: pd.DataFrame) -> str:
    """The table's content fingerprint: the same rows (in any order, CSV or Parquet, with or
    without a byte-order mark) give the same SHA-256; any changed value changes it."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(sorted(map(str, frame.columns))).encode())
    digest.update(np.sort(row_hashes(frame)).tobytes())
    return digest.hexdigest()


def normalise_string_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Store text columns as ``object``.

    pandas 3 reads text as ``StringDtype(na_value=nan)``, which GX 1.x reports as "str" but
    cannot match in ``expect_column_values_to_be_in_type_list``; ``object`` round-trips.
    ``astype(object)`` would create one Python string per cell (about 73 bytes each: 580 MiB
    for 1M rows x 8 text columns); here each cell points to one string per distinct value,
    with the same values and the same missing marker. The columns are replaced in ``frame`` (the one
    ``parse_table`` just built), so each text column's Arrow buffers are freed as soon as it is converted.
    """
    for column in list(frame.columns):
        dtype = frame[column].dtype
        if isinstance(dtype, pd.StringDtype):
            codes, uniques = pd.factorize(frame[column])  # missing values get code -1 ...
            values = np.append(np.asarray(uniques, dtype=object), dtype.na_value)[codes]  # ... which picks the marker
            del codes, uniques
            frame[column] = pd.Series(values, index=frame.index, dtype=object, copy=False)
    return frame


def detached_head(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows in buffers of their own, so keeping them does not keep ``frame``.

    ``head(n).copy()`` is not enough: pandas 3's default text columns are Arrow arrays, which
    copy by reference, so a 5-row copy would hold every row's strings (60 MiB at 800k rows x
    8 text columns). ``take`` gathers the rows into new buffers.
    """
    return frame.take(np.arange(min(rows, len(frame))))


def load_table(uri: str, max_input_mb: float = DEFAULT_MAX_INPUT_MB) -> LoadedTable:
    """Read ``uri`` (a regular file or gs:// object; CSV, compressed CSV or Parquet) into a frame
    with its fingerprints. Files over ``max_input_mb`` (also once decompressed) are refused."""
    mark_first_read()
    limit = max_input_bytes(max_input_mb)
    raw = storage.read_bytes(uri, max_bytes=limit)
    frame = parse_table(uri, raw, max_bytes=limit)
    return LoadedTable(
        frame=frame, uri=uri, sha256=content_sha256(frame), file_sha256=sha256_hex(raw), size_bytes=len(raw)
    )


def normalise_labels(labels: pd.Series) -> pd.Series:
    """Labels of one type: whole floats (``1.0``, read from a float column) become integers, so
    ``1.0`` and ``1`` are one class everywhere (counts, PSI, agreement, the registry)."""
    if pd.api.types.is_float_dtype(labels):
        values = labels.dropna()
        if len(values) and np.all(np.isfinite(values)) and np.all(values == np.floor(values)):
            return labels.astype("Int64") if labels.isna().any() else labels.astype("int64")
    return labels


def label_key(value: object) -> str:
    """A label as a JSON key: ``1``, ``1.0`` and ``np.int64(1)`` are all ``"1"``."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return str(value)


def write_parquet(frame: pd.DataFrame, path: str) -> None:
    frame.to_parquet(path, index=False)


def read_parquet(path: str) -> pd.DataFrame:
    """A Parquet table as a frame. Each Arrow column is freed as it becomes a pandas column (``self_destruct``:
    the read no longer holds the table twice), and each column is its own block (``split_blocks``), so a step
    that is done with a column frees its memory (engineer-features' split moves the batch a column at a time)."""
    mark_first_read()
    return pd.read_parquet(path, to_pandas_kwargs={"self_destruct": True, "split_blocks": True})


def is_numeric_feature(series: pd.Series) -> bool:
    """Numbers are numeric features; strings, categories and booleans are categorical."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def split_features_target(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.Series]:
    if target not in frame.columns:
        raise DataError(f"target column {target!r} is not in the data (columns: {list(frame.columns)})")
    return frame.drop(columns=[target]), frame[target]


def json_safe(value: object) -> Any:
    """Turn numpy/pandas scalars into plain values and non-finite floats into ``None``: a record holds
    numbers or nothing, never the text ``"inf"`` (which a later format call would choke on) and never a
    bare ``NaN``/``Infinity`` (not JSON; KFP's launcher refuses them too)."""
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
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value

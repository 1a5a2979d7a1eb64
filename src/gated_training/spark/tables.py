"""Read a batch into Spark with the pandas engine's checks and words, and type it as pandas would.

The driver streams the file once (never holding it): its SHA-256, the size limit, the compression, UTF-8
and the header's duplicate names, so a broken file fails with the same message on both engines. Spark
then reads the rows. CSV is read as text and typed here, column by column in one aggregation, as pandas'
reader types it:

- pandas' missing-value tokens are missing;
- all integers: a long; a double when any is missing (pandas makes it float64); text when one is beyond
  a long (pandas keeps Python integers there; between 2**63 and 2**64 pandas reads uint64, which this
  engine reads as text);
- all numbers: a double;
- all ``True``/``False`` tokens: a boolean; text ``True``/``False`` when any is missing (pandas keeps
  them as objects);
- anything else: text.

The same bytes therefore give the same table, the same fingerprint and the same split.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import hashlib
import io
import os
import zlib
from dataclasses import dataclass
from typing import Any

from gated_training.config import DEFAULT_MAX_INPUT_MB, max_input_bytes
from gated_training.data import storage, table_format
from gated_training.errors import DataError

# pandas' reader's missing-value tokens (pandas._libs.parsers.STR_NA_VALUES), the empty field included.
NA_TOKENS = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)
TRUE_TOKENS = ("True", "TRUE", "true")
FALSE_TOKENS = ("False", "FALSE", "false")
INTEGER_PATTERN = r"^[+-]?[0-9]+$"
BOM = "\ufeff"
CORRUPT = "__gated_training_corrupt_record"
MAX_SUSPECTS = 1000  # short rows are fine (padded); each suspect is re-read with Python's csv to tell


@dataclass(frozen=True, kw_only=True)
class SparkTable:
    frame: Any  # pyspark.sql.DataFrame
    uri: str
    sha256: str  # the content fingerprint, equal to the pandas engine's for the same content
    file_sha256: str
    size_bytes: int


@dataclass
class _FileFacts:
    sha256: str
    size: int
    header: list[str]
    has_content: bool


class _Utf8Check:
    """Incremental UTF-8 decoding that reports the first bad byte as the pandas engine does."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.offset = 0
        self.lines = 0
        self.head = ""
        self.seen_text = False

    def feed(self, data: bytes, final: bool = False) -> None:
        try:
            text = self.decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            start = self.offset + exc.start - len(self.decoder.getstate()[0])
            line = self.lines + data.count(b"\n", 0, max(exc.start, 0)) + 1
            bad = data[exc.start : exc.end].hex(" ")
            raise DataError(
                f"{self.uri}: not valid UTF-8 at byte {max(start, 0)} (line {line}): bytes {bad}. "
                "Re-encode the file as UTF-8 (for example `iconv -f latin1 -t utf-8`)."
            ) from exc
        self.offset += len(data)
        self.lines += data.count(b"\n")
        if len(self.head) < 1 << 20:
            self.head += text[: (1 << 20) - len(self.head)]
        if not self.seen_text and text.strip():
            self.seen_text = True


def _decompressor(uri: str, compression: str | None) -> Any:
    if compression is None:
        return None
    if compression == "gzip":
        return zlib.decompressobj(wbits=47)  # gzip or zlib headers, concatenated members as gzip allows
    if compression == "bz2":
        return bz2.BZ2Decompressor()
    raise DataError(
        f"{uri}: .xz is not read by the Spark engine (Hadoop has no xz codec); use a plain, .gz or .bz2 CSV, or Parquet"
    )


def _scan_file(uri: str, kind: str, compression: str | None, limit: int) -> _FileFacts:
    """One streamed pass over the file: its digest, and for CSV its encoding and header."""
    digest = hashlib.sha256()
    size = 0
    inflated = 0
    decompressor = _decompressor(uri, compression)
    utf8 = _Utf8Check(uri) if kind == "csv" else None
    has_bytes = False
    for chunk in storage.iter_chunks(uri, max_bytes=limit):
        digest.update(chunk)
        size += len(chunk)
        data = chunk
        if decompressor is not None:
            try:
                data = decompressor.decompress(chunk)
                while decompressor.eof and decompressor.unused_data:  # the next member of a multi-member file
                    rest = decompressor.unused_data
                    decompressor = _decompressor(uri, compression)
                    data += decompressor.decompress(rest)
            except (OSError, EOFError, zlib.error, ValueError) as exc:
                raise DataError(f"{uri}: not a readable {compression} file: {exc}") from exc
            inflated += len(data)
            if inflated > limit:
                raise DataError(
                    f"{uri}: decompresses to more than the limit of {limit:,} bytes (max_input_mb={limit / 2**20:.4g})"
                )
        has_bytes = has_bytes or bool(data.strip())
        if utf8 is not None:
            utf8.feed(data)
    if decompressor is not None and size and not decompressor.eof:  # truncated: the reader would fail mid-file
        raise DataError(f"{uri}: not a readable {compression} file: compressed data ended before the end-of-stream")
    if utf8 is not None:
        utf8.feed(b"", final=True)
    header: list[str] = []
    if utf8 is not None:
        head = utf8.head[1:] if utf8.head.startswith(BOM) else utf8.head
        header = next(csv.reader(io.StringIO(head)), [])
        has_bytes = utf8.seen_text and bool(head.replace(BOM, "").strip())
    return _FileFacts(sha256=digest.hexdigest(), size=size, header=header, has_content=has_bytes)


def _spark_failure(uri: str, what: str, exc: Exception) -> DataError:
    """A Spark read error as one line naming the file, without the JVM's stack."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by:").strip() for line in lines if line.startswith("Caused by:")]
    reason = (causes[-1] if causes else next(iter(lines), type(exc).__name__)).split(" SQLSTATE:")[0]
    reason = reason.split("] ", 1)[-1] if reason.startswith(("org.", "java.", "[")) or ": [" in reason else reason
    return DataError(f"{uri}: {what}: {reason[:300]}")


def spark_path(uri: str) -> str:
    """A path Spark reads: gs:// as is (the image's GCS connector), a local path as an absolute file:// URI."""
    return uri if storage.is_gcs(uri) else "file://" + os.path.abspath(uri)


def _read_csv_rows(spark: Any, uri: str, header: list[str]) -> Any:
    """The CSV's rows as text under the header's names. A row shorter than the header is padded with missing
    values, as pandas does; a longer one (or an unterminated quote) is refused, as pandas refuses it."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    schema = StructType([StructField(name, StringType()) for name in [*header, CORRUPT]])
    try:
        raw = spark.read.schema(schema).csv(
            spark_path(uri),
            header=True,
            enforceSchema=True,
            mode="PERMISSIVE",
            columnNameOfCorruptRecord=CORRUPT,
            encoding="UTF-8",
            quote='"',
            escape='"',
            multiLine=False,
        )
        # Spark refuses a query of the corrupt-record column alone: a data column is read beside it.
        suspects = (
            raw.where(F.col(CORRUPT).isNotNull()).select(CORRUPT, F.col(f"`{header[0]}`")).limit(MAX_SUSPECTS).collect()
        )
    except Exception as exc:  # Spark raises its own and Py4J's types
        raise _spark_failure(uri, "not a well-formed CSV file", exc) from exc
    for row in suspects:
        line = row[CORRUPT]
        fields = next(csv.reader(io.StringIO(line)), [])
        if len(fields) > len(header) or line.count('"') % 2:
            raise DataError(
                f"{uri}: not a well-formed CSV file: a record has {len(fields)} fields where the header has "
                f"{len(header)} (or an unterminated quote): {line[:200]!r}"
            )
    if len(suspects) == MAX_SUSPECTS:
        long_rows = (
            raw.where(F.col(CORRUPT).isNotNull())
            .select(F.size(F.split(F.col(CORRUPT), ",")).alias("fields"))
            .where(F.col("fields") > len(header))
        )
        if long_rows.limit(1).count():
            raise DataError(
                f"{uri}: not a well-formed CSV file: records with more fields than the header's {len(header)}"
            )
    return raw.drop(CORRUPT)


def _type_csv_columns(frame: Any, uri: str) -> Any:
    """Type the text columns of a CSV as pandas' reader does, in one aggregation."""
    from pyspark.sql import functions as F

    cleaned = frame.select(
        [
            F.when(F.col(f"`{name}`").isin(list(NA_TOKENS)), None).otherwise(F.col(f"`{name}`")).alias(name)
            for name in frame.columns
        ]
    )
    aggregates = []
    for index, name in enumerate(cleaned.columns):
        column = F.col(f"`{name}`")
        aggregates += [
            F.count(column).alias(f"n{index}"),
            F.count(F.when(column.rlike(INTEGER_PATTERN), 1)).alias(f"p{index}"),
            F.count(F.when(column.rlike(INTEGER_PATTERN) & column.try_cast("long").isNotNull(), 1)).alias(f"i{index}"),
            F.count(column.try_cast("double")).alias(f"f{index}"),
            F.count(F.when(column.isin(list(TRUE_TOKENS + FALSE_TOKENS)), 1)).alias(f"b{index}"),
        ]
    try:
        counts = cleaned.agg(F.count(F.lit(1)).alias("rows"), *aggregates).collect()[0]
    except Exception as exc:  # Spark raises its own and Py4J's types
        raise _spark_failure(uri, "not a well-formed CSV file", exc) from exc
    rows = int(counts["rows"])
    typed = []
    for index, name in enumerate(cleaned.columns):
        column = F.col(f"`{name}`")
        present = int(counts[f"n{index}"])
        if present and present == int(counts[f"p{index}"]) != int(counts[f"i{index}"]):
            typed.append(column.alias(name))  # integers beyond a long: pandas keeps them as Python ints, text here
        elif present == 0 or (present == int(counts[f"f{index}"]) and present != int(counts[f"i{index}"])):
            typed.append(column.try_cast("double").alias(name))
        elif present == int(counts[f"i{index}"]):
            cast = column.try_cast("long")
            typed.append((cast if present == rows else cast.cast("double")).alias(name))
        elif present == int(counts[f"b{index}"]):
            truth = column.isin(list(TRUE_TOKENS))
            if present == rows:
                typed.append(truth.alias(name))
            else:
                typed.append(F.when(column.isNull(), None).when(truth, "True").otherwise("False").alias(name))
        else:
            typed.append(column.alias(name))
    return cleaned.select(typed), rows


def read_table(uri: str, max_input_mb: float = DEFAULT_MAX_INPUT_MB) -> SparkTable:
    """Read ``uri`` (a regular file or gs:// object; CSV, .gz/.bz2 CSV or Parquet) as a typed Spark frame,
    with the pandas engine's fingerprints and errors."""
    from gated_training.spark.hashing import content_sha256
    from gated_training.spark.session import spark_session

    kind, compression = table_format(uri)
    limit = max_input_bytes(max_input_mb)
    facts = _scan_file(uri, kind, compression, limit)
    if not facts.has_content:
        raise DataError(f"{uri}: the file is empty")
    spark = spark_session()
    if kind == "csv":
        duplicated_header = sorted({name for name in facts.header if facts.header.count(name) > 1})
        if duplicated_header:
            raise DataError(f"{uri}: duplicate column names {duplicated_header} in the header")
        header = [facts.header[0].removeprefix(BOM), *facts.header[1:]] if facts.header else []
        if not header:
            raise DataError(f"{uri}: the file has no columns")
        raw = _read_csv_rows(spark, uri, header)
        frame, rows = _type_csv_columns(raw, uri)
    else:
        try:
            frame = spark.read.parquet(spark_path(uri))
            schema = frame.schema
        except Exception as exc:
            raise _spark_failure(uri, "not a readable Parquet file", exc) from exc
        from pyspark.sql.types import ArrayType, MapType, StructType

        nested = [
            f"{field.name} ({field.dataType.simpleString()})"
            for field in schema.fields
            if isinstance(field.dataType, (ArrayType, MapType, StructType))
        ]
        if nested:
            raise DataError(
                f"{uri}: nested Parquet columns cannot be features: {', '.join(nested)}; flatten them "
                "into one column per value"
            )
        if not frame.columns:
            raise DataError(f"{uri}: the file has no columns")
        try:
            rows = frame.count()
        except Exception as exc:
            raise _spark_failure(uri, "not a readable Parquet file", exc) from exc
    if rows == 0:
        raise DataError(f"{uri}: the file has a header ({', '.join(map(str, frame.columns))[:500]}) but no rows")
    names = list(frame.columns)
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DataError(f"{uri}: duplicate column names {duplicated}")
    frame = frame.cache()
    return SparkTable(
        frame=frame, uri=uri, sha256=content_sha256(frame), file_sha256=facts.sha256, size_bytes=facts.size
    )


def normalise_labels(frame: Any, target: str) -> Any:
    """Whole-number labels read as doubles become longs, as ``data.normalise_labels`` does in pandas."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    if target not in frame.columns or not isinstance(frame.schema[target].dataType, (DoubleType, FloatType)):
        return frame
    column = F.col(f"`{target}`")
    counts = frame.agg(
        F.count(column).alias("present"),
        F.count(F.when(F.isnan(column) | (F.abs(column) == float("inf")) | (column != F.floor(column)), 1)).alias(
            "odd"
        ),
    ).collect()[0]
    if counts["present"] and not counts["odd"]:
        return frame.withColumn(target, column.cast("long"))
    return frame

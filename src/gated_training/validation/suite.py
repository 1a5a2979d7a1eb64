"""The expectation suite: a Great Expectations 1.x suite JSON file kept beside the data.

The file is GX's own format (``ExpectationSuite.to_json_dict()``). Each expectation carries
GX's native ``severity``: ``critical`` failures block the run, ``warning`` and ``info``
failures are reported only.
"""

from __future__ import annotations

import json
import math
from pathlib import PurePosixPath
from typing import Any

import pandas as pd

from gated_training.data import is_numeric_feature, json_safe, sha256_hex, storage
from gated_training.errors import DataError, SuiteError
from gated_training.validation.policy import check_built_condition, check_expectation_document

SUITE_SUFFIX = ".expectations.json"
SEVERITIES = ("critical", "warning", "info")

# dtype names as GX reports them for pandas columns.
NUMERIC_TYPES = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "float16",
    "float32",
    "float64",
    "Float32",
    "Float64",
]
STRING_TYPES = [
    "str",
    "object",
    "category",
]  # text loads as object, checked per value: see data.normalise_string_columns
BOOLEAN_TYPES = ["bool", "boolean"]


def default_suite_uri(data_uri: str) -> str:
    """``data/x.csv`` → ``data/x.expectations.json``: the suite lives beside the data."""
    if storage.is_gcs(data_uri):
        parent, _, name = data_uri.rpartition("/")
        return f"{parent}/{PurePosixPath(name).stem}{SUITE_SUFFIX}"
    path = PurePosixPath(data_uri)
    return str(path.with_name(path.stem + SUITE_SUFFIX))


def resolve_suite_uri(data_uri: str, suite_uri: str) -> str:
    """The explicit suite, or the one beside the data; a clear error when there is none."""
    if suite_uri:
        return suite_uri
    beside = default_suite_uri(data_uri)
    if not storage.exists(beside):
        raise SuiteError(
            f"no expectation suite for {data_uri}: expected {beside} beside the data, or name one "
            f"with --suite / the suite_uri parameter. Draft one with "
            f"`gated-training suite init --data {data_uri} --target COLUMN`."
        )
    return beside


MAX_SUITE_BYTES = 16 * 2**20  # a suite is a few KB; a larger file is a mistake or an attack


def suite_sha256(suite_uri: str) -> tuple[bytes, str]:
    """The suite's bytes and their SHA-256 (recorded in the manifest, pinnable with ``suite_sha256``)."""
    try:
        raw = storage.read_bytes(suite_uri, max_bytes=MAX_SUITE_BYTES)
    except DataError as exc:
        raise SuiteError(f"expectation suite {exc}") from exc
    return raw, sha256_hex(raw)


def read_suite_document(suite_uri: str, raw: bytes | None = None) -> dict[str, Any]:
    """Parse the suite file and check it against the allowlist (``suite_policy``); errors name the
    file, the expectation and the argument."""
    if raw is None:
        raw, _ = suite_sha256(suite_uri)
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SuiteError(f"{suite_uri}: not valid UTF-8 at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{suite_uri}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("expectations"), list):
        raise SuiteError(f"{suite_uri}: expected a JSON object with an 'expectations' list")
    if not document["expectations"]:
        raise SuiteError(f"{suite_uri}: the suite has no expectations")
    for index, expectation in enumerate(document["expectations"]):
        where = f"{suite_uri}: expectations[{index}]"
        if not isinstance(expectation, dict) or not isinstance(expectation.get("type"), str):
            raise SuiteError(f"{where}: each expectation needs a 'type' string")
        if not isinstance(expectation.get("kwargs", {}), dict):
            raise SuiteError(f"{where} ({expectation['type']}): 'kwargs' must be an object")
        severity = expectation.get("severity", "critical")
        if severity not in SEVERITIES:
            raise SuiteError(f"{where} ({expectation['type']}): severity {severity!r} is not one of {SEVERITIES}")
        check_expectation_document(expectation, index, suite_uri)
    return document


# A suite names column types as pandas does; on the Spark engine the same types are Spark's. Each pandas
# name maps to the Spark type the Spark engine gives such a column (spark.read_table types CSV as pandas'
# reader would: integers long, numbers double, text string). Names a suite writes in Spark's own terms pass.
SPARK_TYPE_NAMES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("int8", "Int8"), ("ByteType",)),
    **dict.fromkeys(("int16", "Int16", "uint8", "UInt8"), ("ShortType",)),
    **dict.fromkeys(("int32", "Int32", "uint16", "UInt16"), ("IntegerType",)),
    **dict.fromkeys(("int64", "Int64", "uint32", "UInt32", "int", "integer"), ("LongType",)),
    **dict.fromkeys(("uint64", "UInt64"), ("DecimalType",)),
    **dict.fromkeys(("float16", "float32", "Float32"), ("FloatType",)),
    **dict.fromkeys(("float64", "Float64", "float", "double"), ("DoubleType",)),
    **dict.fromkeys(("object", "str", "string", "String", "StringDtype", "category"), ("StringType",)),
    **dict.fromkeys(("bool", "boolean", "BooleanDtype"), ("BooleanType",)),
    **dict.fromkeys(("datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]"), ("TimestampType",)),
}


def spark_type_names(names: list[Any]) -> list[Any]:
    """A suite's type list in Spark's names, in order, without repeats (unknown names pass unchanged)."""
    translated: list[Any] = []
    for name in names:
        for spark_name in SPARK_TYPE_NAMES.get(name, (name,)) if isinstance(name, str) else (name,):
            if spark_name not in translated:
                translated.append(spark_name)
    return translated


def _for_engine(kind: str, kwargs: dict[str, Any], engine: str) -> dict[str, Any]:
    if engine != "spark":
        return kwargs
    if kind == "expect_column_values_to_be_in_type_list" and isinstance(kwargs.get("type_list"), list):
        return {**kwargs, "type_list": spark_type_names(kwargs["type_list"])}
    if kind == "expect_column_values_to_be_of_type" and isinstance(kwargs.get("type_"), str):
        return {**kwargs, "type_": spark_type_names([kwargs["type_"]])[0]}
    return kwargs


def build_gx_suite(document: dict[str, Any], suite_uri: str, engine: str = "pandas"):  # -> gx.ExpectationSuite
    """Turn the checked document into a GX suite, naming the expectation GX rejects. On ``engine="spark"``
    type names are Spark's (:data:`SPARK_TYPE_NAMES`); nothing else differs."""
    from gated_training.validation.gx import import_gx

    gx = import_gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    expectations = []
    for index, spec in enumerate(document["expectations"]):
        try:
            configuration = ExpectationConfiguration(
                type=spec["type"],
                kwargs=_for_engine(spec["type"], spec.get("kwargs", {}), engine),
                meta=spec.get("meta") or {},
                severity=spec.get("severity", "critical"),
            )
            expectation = configuration.to_domain_obj()
        except Exception as exc:  # GX raises pydantic and its own errors here
            detail = " ".join(str(exc).split())
            raise SuiteError(f"{suite_uri}: expectations[{index}] ({spec['type']}) is invalid: {detail[:500]}") from exc
        check_built_condition(expectation, index, suite_uri)
        expectations.append(expectation)
    return gx.ExpectationSuite(name=document.get("name") or "suite", expectations=expectations)


def _type_family(series: pd.Series) -> list[str]:
    if pd.api.types.is_bool_dtype(series):
        return BOOLEAN_TYPES
    if pd.api.types.is_numeric_dtype(series):
        return NUMERIC_TYPES
    return STRING_TYPES


def _expectation(kind: str, severity: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {}, "severity": severity}


DRAFT_MOSTLY = 0.95  # ranges and value sets: 5% of rows may stray before the batch blocks
ID_MIN_ROWS = 100
ID_UNIQUE_SHARE = 0.9


def id_like(series: pd.Series) -> bool:
    """A key or free text rather than a feature: text almost unique per row, or whole numbers
    unique in every row. One-hot encoding them costs memory and learns nothing that generalises."""
    values = series.dropna()
    if len(values) < ID_MIN_ROWS or pd.api.types.is_bool_dtype(series):
        return False
    if is_numeric_feature(series):
        whole = pd.api.types.is_integer_dtype(series) or bool((values == values.round()).all())
        return whole and values.nunique() == len(values)
    return values.nunique() >= ID_UNIQUE_SHARE * len(values)


def _label_spelling(value: Any) -> tuple[bool, str]:
    """(is it a number, its canonical spelling): ``1``, ``1.0``, ``"1"`` → (True, "1");
    ``"Yes"`` → (False, "yes")."""
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return False, text
    return True, str(int(number)) if number.is_integer() else repr(number)


def check_label_spellings(labels: pd.Series, target: str) -> list[Any]:
    """The classes, refusing one class spelled two ways (``0``/``0.0``, ``yes``/``Yes``) or numbers
    mixed with words (``0``/``1``/``yes``): each spelling would become a class of its own."""
    classes = labels.dropna().unique().tolist()
    spellings = [_label_spelling(value) for value in classes]
    numbers = {is_number for is_number, _ in spellings}
    if len({key for _, key in spellings}) < len(classes) or len(numbers) > 1:
        shown = ", ".join(repr(v) for v in classes[:12]) + (" …" if len(classes) > 12 else "")
        raise DataError(
            f"target column {target!r} mixes label spellings ({shown}): one class spelled two ways "
            "would train as two. Normalise the labels (all 0/1, or all no/yes) and draft again"
        )
    return sorted(classes, key=str)


def draft_suite(frame: pd.DataFrame, target: str, name: str) -> dict[str, Any]:
    """Draft a suite from a reference dataset, for a person to review and tighten.

    Critical: the row count (half to 100x the reference), the exact column set, types, the
    target and its classes, and ranges and value sets with a ``mostly`` tolerance of
    ``DRAFT_MOSTLY`` (gross corruption blocks at the data gate, normal variation passes).
    Warnings: null fractions with slack above what was seen. ID-like columns (keys, free text)
    are listed in ``meta.excluded_features``: the data gate keeps them out of the features.
    """
    if target not in frame.columns:
        raise DataError(f"target column {target!r} is not in the data (columns: {list(frame.columns)[:50]})")
    classes = check_label_spellings(frame[target], target)
    rows = len(frame)
    excluded = [str(column) for column in frame.columns if column != target and id_like(frame[column])]
    expectations = [
        _expectation(
            "expect_table_row_count_to_be_between",
            "critical",
            min_value=max(1, rows // 2),
            max_value=rows * 100,
        ),
        _expectation(
            "expect_table_columns_to_match_set",
            "critical",
            column_set=[str(c) for c in frame.columns],
            exact_match=True,
        ),
    ]
    for column in frame.columns:
        series = frame[column]
        if column in excluded:
            continue
        expectations.append(_expectation("expect_column_to_exist", "critical", column=column))
        expectations.append(
            _expectation(
                "expect_column_values_to_be_in_type_list",
                "critical",
                column=column,
                type_list=_type_family(series),
            )
        )
        if column == target:
            expectations.append(_expectation("expect_column_values_to_not_be_null", "critical", column=column))
            expectations.append(
                _expectation(
                    "expect_column_values_to_be_in_set", "critical", column=column, value_set=json_safe(classes)
                )
            )
            continue
        null_fraction = float(series.isna().mean())
        allowed_nulls = min(1.0, round(null_fraction * 1.5 + 0.05, 2))
        expectations.append(
            _expectation(
                "expect_column_values_to_not_be_null",
                "warning" if null_fraction else "critical",
                column=column,
                mostly=round(1.0 - allowed_nulls, 2) if null_fraction else 1.0,
            )
        )
        if is_numeric_feature(series):
            low, high = float(series.min()), float(series.max())
            if math.isfinite(low) and math.isfinite(high):
                margin = (high - low) * 0.1
                # Never invent negative values for a column that has none (amounts, counts, ages).
                floor = max(0.0, low - margin) if low >= 0 else low - margin
                expectations.append(
                    _expectation(
                        "expect_column_values_to_be_between",
                        "critical",
                        mostly=DRAFT_MOSTLY,
                        column=column,
                        min_value=round(floor, 6),
                        max_value=round(high + margin, 6),
                    )
                )
        elif not pd.api.types.is_bool_dtype(series):
            values = sorted(map(str, series.dropna().unique().tolist()))
            if len(values) <= 50:  # a closed vocabulary; free text gets no set
                expectations.append(
                    _expectation(
                        "expect_column_values_to_be_in_set",
                        "critical",
                        mostly=DRAFT_MOSTLY,
                        column=column,
                        value_set=values,
                    )
                )
    meta: dict[str, Any] = {"drafted_from_rows": rows, "target": target}
    if excluded:
        meta["excluded_features"] = excluded
    return {"name": name, "expectations": expectations, "meta": meta}

"""Logged calls decoded into rows: the inputs each call sent (one row per instance) and what the model answered.

Both protocols the serving runtime speaks: V2 (``{"inputs": [{"name", "shape", "datatype", "data"}]}``, answered
with ``predict`` and ``predict_proba`` outputs) and V1 (``{"instances": [{column: value}]}``, answered with
``predictions`` and ``probabilities``). A JSON null is a missing value, as in serving. A body that is not what
the runtime accepts or answers (not JSON, a shape that does not match its data, a row count the answer does not
repeat) is counted and its call left out, never guessed at.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MAX_ROWS_PER_CALL = 10_000  # the runtime's own V1 limit; V2 calls above it are counted, not decoded


@dataclass
class DecodedCalls:
    """One row per instance: ``features`` (the inputs, columns as the model's), and ``rows`` with ``id`` (the
    call), ``row`` (its index in the call), ``key`` (what labels join on), ``version``, ``endpoint``,
    ``request_time``, ``predicted`` and the probability of each class in ``probabilities`` (classes' order)."""

    features: pd.DataFrame
    rows: pd.DataFrame
    probabilities: np.ndarray
    problems: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)  # the first few problems, for the report


def _flat(data: Any) -> list[Any]:
    if isinstance(data, list) and data and isinstance(data[0], list):
        return [item for inner in data for item in (inner if isinstance(inner, list) else [inner])]
    return data if isinstance(data, list) else []


def _v2_inputs(document: dict[str, Any]) -> dict[str, list[Any]] | str:
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return "no inputs"
    columns: dict[str, list[Any]] = {}
    rows = None
    for item in inputs:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return "an input without a name"
        shape = item.get("shape")
        data = _flat(item.get("data"))
        if not (isinstance(shape, list) and shape and all(isinstance(n, int) and n >= 0 for n in shape)):
            return f"input {item['name'][:64]!r}: no valid shape"
        if math.prod(shape) != len(data) or (len(shape) > 1 and math.prod(shape[1:]) != 1):
            return f"input {item['name'][:64]!r}: shape {shape[:4]} does not match its {len(data)} values"
        if rows is not None and shape[0] != rows:
            return "inputs of different lengths"
        rows = shape[0]
        columns[item["name"]] = data
    return columns


def _v1_inputs(document: dict[str, Any]) -> dict[str, list[Any]] | str:
    instances = document.get("instances")
    if not isinstance(instances, list) or not instances or not all(isinstance(row, dict) for row in instances):
        return "no instances"
    names = list(dict.fromkeys(name for row in instances for name in row))
    return {name: [row.get(name) for row in instances] for name in names}


def _answers(document: dict[str, Any], classes: int) -> tuple[list[Any], list[list[float]]] | str:
    if "outputs" in document:
        outputs = {o.get("name"): o for o in document["outputs"] if isinstance(o, dict)}
        if "predict" not in outputs or "predict_proba" not in outputs:
            return "an answer without predict and predict_proba"
        labels = _flat(outputs["predict"].get("data"))
        flat = _flat(outputs["predict_proba"].get("data"))
        if len(flat) != len(labels) * classes:
            return f"predict_proba holds {len(flat)} values for {len(labels)} rows of {classes} classes"
        return labels, [flat[i * classes : (i + 1) * classes] for i in range(len(labels))]
    predictions, given = document.get("predictions"), document.get("probabilities")
    if not isinstance(predictions, list) or not isinstance(given, list) or len(predictions) != len(given):
        return "an answer without predictions and probabilities of the same length"
    if not all(isinstance(row, list) and len(row) == classes for row in given):
        return f"probabilities are not {classes} per row"
    return predictions, given


def _numbers(row: list[Any]) -> bool:
    return all(
        isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and 0 <= p <= 1 for p in row
    )


def decode_calls(
    calls: pd.DataFrame, inputs: list[str], classes: list[Any], label_key_header: str = ""
) -> DecodedCalls:
    """Decode the window's calls for a model with these input columns and classes (its feature metadata)."""
    problems: dict[str, int] = {}
    examples: list[str] = []

    def problem(kind: str, call_id: str, detail: str) -> None:
        problems[kind] = problems.get(kind, 0) + 1
        if len(examples) < 10:
            examples.append(f"call {call_id[:64]}: {detail[:200]}")

    columns: dict[str, list[Any]] = {name: [] for name in inputs}
    ids: list[str] = []
    rows: list[int] = []
    keys: list[str] = []
    versions: list[str] = []
    endpoints: list[str] = []
    times: list[Any] = []
    predicted: list[Any] = []
    probabilities: list[list[float]] = []
    for call in calls.itertuples(index=False):
        try:
            request = json.loads(call.request)
            response = json.loads(call.response)
        except (TypeError, ValueError):
            problem("undecodable_body", call.id, "a body that is not JSON")
            continue
        if not isinstance(request, dict) or not isinstance(response, dict):
            problem("undecodable_body", call.id, "a body that is not a JSON object")
            continue
        sent = _v2_inputs(request) if "inputs" in request else _v1_inputs(request)
        if isinstance(sent, str):
            problem("undecodable_request", call.id, sent)
            continue
        answered = _answers(response, len(classes))
        if isinstance(answered, str):
            problem("undecodable_response", call.id, answered)
            continue
        labels, probs = answered
        count = len(next(iter(sent.values())))
        if count != len(labels) or count == 0:
            problem("row_count_mismatch", call.id, f"{count} rows sent, {len(labels)} answered")
            continue
        if count > MAX_ROWS_PER_CALL:
            problem("too_many_rows", call.id, f"{count} rows in one call")
            continue
        if not all(_numbers(row) for row in probs):
            problem("undecodable_response", call.id, "probabilities that are not numbers in [0, 1]")
            continue
        key = call.id
        if label_key_header:
            values = (json.loads(call.metadata or "{}") or {}).get(label_key_header) or []
            key = values[0] if values and isinstance(values[0], str) else ""
        for name in inputs:
            values = sent.get(name)
            columns[name].extend(values if values is not None else [None] * count)
        ids.extend([call.id] * count)
        rows.extend(range(count))
        keys.extend([key] * count)
        versions.extend([call.version] * count)
        endpoints.extend([call.endpoint] * count)
        times.extend([call.request_time] * count)
        predicted.extend(labels)
        probabilities.extend(probs)
        extra = [name for name in sent if name not in columns]
        if extra:
            problem("unexpected_inputs", call.id, f"inputs the model does not take: {', '.join(extra[:5])}")
        absent = [name for name in inputs if name not in sent]
        if absent:
            problem("missing_inputs", call.id, f"inputs the model takes, not sent: {', '.join(absent[:5])}")
    features = pd.DataFrame({name: pd.Series(values, dtype=object) for name, values in columns.items()})
    for name in features.columns:  # numbers stay numbers (None → NaN); text stays text
        converted = pd.to_numeric(features[name], errors="coerce")
        if converted.notna().sum() == features[name].notna().sum():
            features[name] = converted.astype("float64")
    table = pd.DataFrame(
        {
            "id": ids,
            "row": rows,
            "key": keys,
            "version": versions,
            "endpoint": endpoints,
            "request_time": pd.to_datetime(pd.Series(times, dtype=object), utc=True),
            "predicted": pd.Series(predicted, dtype=object),
        }
    )
    matrix = (
        np.asarray(probabilities, dtype=float).reshape(len(ids), len(classes)) if ids else np.zeros((0, len(classes)))
    )
    return DecodedCalls(features=features, rows=table, probabilities=matrix, problems=problems, examples=examples)

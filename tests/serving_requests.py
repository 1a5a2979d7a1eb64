"""V2 and V1 request bodies for one row, as a client sends them: JSON null for a missing value."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def _value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def v2_request(row: pd.DataFrame) -> dict[str, Any]:
    """Open Inference Protocol (V2): one input per column; numbers as FP64, text as BYTES."""
    inputs = []
    for name in row.columns:
        numeric = pd.api.types.is_numeric_dtype(row[name]) and not pd.api.types.is_bool_dtype(row[name])
        inputs.append(
            {
                "name": name,
                "shape": [len(row)],
                "datatype": "FP64" if numeric else "BYTES",
                "data": [_value(v) if not numeric or _value(v) is None else float(v) for v in row[name]],
            }
        )
    return {"inputs": inputs}


def v1_request(row: pd.DataFrame) -> dict[str, Any]:
    """KServe V1: one object per row."""
    return {"instances": [{name: _value(v) for name, v in record.items()} for record in row.to_dict("records")]}


def v2_answer(body: dict[str, Any]) -> tuple[list[Any], list[list[float]]]:
    """The labels and class probabilities of a V2 response with ``predict`` and ``predict_proba``."""
    outputs = {output["name"]: output for output in body["outputs"]}
    labels = outputs["predict"]["data"]
    flat, shape = outputs["predict_proba"]["data"], outputs["predict_proba"]["shape"]
    return labels, [flat[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]

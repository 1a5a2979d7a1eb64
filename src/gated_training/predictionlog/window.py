"""Reading one window of the prediction log, every file checked, nothing trusted.

The calls of one InferenceService whose request arrived in [start, end): the predictions the sinks paired,
plus the requests and responses two sinks kept aside as unpaired that belong together (a pair split across
replicas, or across a sink's restart), de-duplicated by id (an id logged twice, by a replayed event or a
second sink, counts once: the first recorded wins). A file that is not a prediction-log Parquet file is
skipped and counted, never fatal; a window larger than ``max_rows`` calls fails naming the limit.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from gated_training.data import storage
from gated_training.errors import DataError
from gated_training.predictionlog.events import answered_version
from gated_training.predictionlog.store import (
    PREDICTION_COLUMNS,
    aside_folder,
    hours_between,
    partition_value,
    stats_uri,
)

MAX_FILE_BYTES = 512 * 2**20
SINK_COUNTERS_REPORTED = ("accepted", "refused_full", "malformed", "oversized", "duplicates", "write_errors")


@dataclass
class LoggedWindow:
    service: str
    start: datetime
    end: datetime
    calls: pd.DataFrame  # PREDICTION_COLUMNS, one row per call id
    counts: dict[str, int] = field(default_factory=dict)
    sink: dict[str, int] = field(default_factory=dict)  # the sinks' own counters, summed over the window's hours
    problems: list[str] = field(default_factory=list)  # files skipped, and why (the first few)

    @property
    def versions(self) -> list[str]:
        return sorted(self.calls["version"].unique()) if len(self.calls) else []


def _read_parquet(uri: str, columns: tuple[str, ...]) -> pd.DataFrame:
    raw = storage.read_bytes(uri, max_bytes=MAX_FILE_BYTES)
    frame = pd.read_parquet(io.BytesIO(raw))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"not a prediction-log file: no column(s) {', '.join(missing)}")
    return frame[list(columns)]


def _files(folder: str) -> list[str]:
    return [storage.join_uri(folder, name) for name in storage.list_files(folder) if name.endswith(".parquet")]


def read_window(log_uri: str, service: str, start: datetime, end: datetime, max_rows: int) -> LoggedWindow:
    """The window's calls of ``service`` (an InferenceService name), with what was counted on the way."""
    model_root = storage.join_uri(log_uri, f"model={partition_value(service)}")
    counts = dict.fromkeys(
        ("files", "unreadable_files", "rows_read", "duplicate_ids", "repaired_pairs", "unpaired_requests",
         "unpaired_responses", "kept_aside"),
        0,
    )  # fmt: skip
    problems: list[str] = []
    frames: list[pd.DataFrame] = []
    hours = hours_between(start, end)
    rows = 0

    def load(uri: str, columns: tuple[str, ...]) -> pd.DataFrame | None:
        nonlocal rows
        counts["files"] += 1
        try:
            frame = _read_parquet(uri, columns)
        except (DataError, OSError, ValueError, TypeError) as exc:  # pyarrow's errors are ValueErrors/OSErrors
            counts["unreadable_files"] += 1
            if len(problems) < 10:
                problems.append(f"{uri}: skipped: {str(exc)[:200]}")
            return None
        rows += len(frame)
        if rows > max_rows:
            raise DataError(
                f"prediction log {model_root}: more than {max_rows} calls in the window {start.isoformat()} – "
                f"{end.isoformat()}; shorten window_hours or raise max_window_rows (memory grows with it)"
            )
        return frame

    versions = [name.split("=", 1)[1] for name in storage.list_children(model_root) if name.startswith("version=")]
    for version in versions:
        for hour in hours:
            for uri in _files(storage.join_uri(model_root, f"version={version}", f"hour={hour}")):
                frame = load(uri, PREDICTION_COLUMNS)
                if frame is not None:
                    frames.append(frame)
    aside_columns = ("reason", "id", "kind", "inference_service", "namespace", "time", "body")
    aside: list[pd.DataFrame] = []
    for hour in hours:
        for uri in _files(aside_folder(log_uri, service, hour)):
            frame = load(uri, aside_columns)
            if frame is not None:
                aside.append(frame)
    if aside:
        frames.append(_repaired(pd.concat(aside, ignore_index=True), counts))
    calls = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    counts["rows_read"] = len(calls)
    if len(calls):
        calls["request_time"] = pd.to_datetime(calls["request_time"], utc=True)
        inside = (calls["request_time"] >= pd.Timestamp(start)) & (calls["request_time"] < pd.Timestamp(end))
        calls = calls[inside]
        calls = calls.sort_values(["recorded_time", "id"], kind="stable", na_position="last")
        before = len(calls)
        calls = calls.drop_duplicates(subset=["id"], keep="first")
        counts["duplicate_ids"] = before - len(calls)
        calls = calls.sort_values("request_time", kind="stable").reset_index(drop=True)
    return LoggedWindow(
        service=service,
        start=start,
        end=end,
        calls=calls,
        counts=counts,
        sink=_sink_counters(log_uri, hours, problems),
        problems=problems,
    )


def _repaired(aside: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    """Calls whose request and response were kept aside apart (two sinks, a restart), paired again by id."""
    counts["kept_aside"] = len(aside)
    requests = aside[aside["reason"] == "unpaired_request"].drop_duplicates("id")
    responses = aside[aside["reason"] == "unpaired_response"].drop_duplicates("id")
    both = requests.merge(responses, on="id", suffixes=("_request", "_response"))
    counts["repaired_pairs"] = len(both)
    counts["unpaired_requests"] = len(requests) - len(both)
    counts["unpaired_responses"] = len(responses) - len(both)
    if both.empty:
        return pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    return pd.DataFrame(
        {
            "id": both["id"],
            "namespace": both["namespace_request"],
            "inference_service": both["inference_service_request"],
            "endpoint": "",
            "component": "",
            "source": "",
            "version": [answered_version(body) for body in both["body_response"]],
            "request_time": both["time_request"],
            "response_time": both["time_response"],
            "recorded_time": both["time_response"],
            "metadata": "{}",  # kept-aside events keep no metadata headers
            "content_type": "",
            "request": both["body_request"],
            "response": both["body_response"],
        }
    )


def _sink_counters(log_uri: str, hours: list[str], problems: list[str]) -> dict[str, int]:
    """Every sink's counters for the window's hours, summed (what the sinks dropped is reported here)."""
    totals: dict[str, int] = {}
    for hour in hours:
        folder = stats_uri(log_uri, hour, "x").rsplit("/", 1)[0]
        for name in storage.list_files(folder):
            try:
                document = json.loads(storage.read_bytes(storage.join_uri(folder, name), max_bytes=2**20))
                counters: dict[str, Any] = document["counters"]
                for key, value in counters.items():
                    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                        totals[key] = totals.get(key, 0) + value
            except (DataError, ValueError, KeyError, TypeError) as exc:
                if len(problems) < 10:
                    problems.append(f"sink counters {folder}/{name}: skipped: {str(exc)[:200]}")
    return totals

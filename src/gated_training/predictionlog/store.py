"""Where the prediction log lives and what its files hold.

Under the prediction-log prefix (a folder or ``gs://bucket/prefix``), Hive-style partitions::

    model=<InferenceService>/version=<registry version>/hour=<YYYY-MM-DDTHH>/part-<sink>-<n>.parquet
    model=<InferenceService>/aside/hour=<…>/part-<sink>-<n>.parquet      events kept aside, with why
    sink/hour=<…>/<sink>.json                                                each sink's counters for that hour

A prediction row is one call: the request and the response events of one ``ce-id``, with the version
that answered (read from the response), the times the agent recorded, the endpoint (default or canary),
the metadata headers and both bodies as they were sent. Files are written once and never changed
(create-only), so a reader never sees half a file and two sinks never collide.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from gated_training.data import storage
from gated_training.predictionlog.events import LoggedEvent, answered_version

PREDICTION_COLUMNS = (
    "id",
    "namespace",
    "inference_service",
    "endpoint",
    "component",
    "source",
    "version",
    "request_time",
    "response_time",
    "recorded_time",
    "metadata",
    "content_type",
    "request",
    "response",
)
ASIDE_COLUMNS = (
    "reason",
    "message",
    "id",
    "kind",
    "inference_service",
    "namespace",
    "time",
    "received",
    "size",
    "headers",
    "body",
)
ASIDE_BODY_BYTES = 4096  # what an event kept aside keeps of its body: enough to see what it was
HOUR_FORMAT = "%Y-%m-%dT%H"
_PARTITION_VALUE = re.compile(r"[0-9A-Za-z._-]{1,128}")


@dataclass(frozen=True)
class Prediction:
    """A paired call, ready to be written."""

    request: LoggedEvent
    response: LoggedEvent

    @property
    def version(self) -> str:
        return answered_version(self.response.body)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.request.id,
            "namespace": self.request.namespace,
            "inference_service": self.request.inference_service,
            "endpoint": self.request.endpoint or self.response.endpoint,
            "component": self.request.component,
            "source": self.request.source,
            "version": self.version,
            "request_time": self.request.time,
            "response_time": self.response.time,
            "recorded_time": self.response.recorded_time or self.request.recorded_time,
            "metadata": json.dumps(self.request.metadata, separators=(",", ":")),
            "content_type": self.request.content_type,
            "request": self.request.body,
            "response": self.response.body,
        }


def hour_of(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(HOUR_FORMAT)


def partition_value(value: str) -> str:
    """A name safe as one path segment; anything else is written under ``_other``."""
    return value if _PARTITION_VALUE.fullmatch(value) and value not in (".", "..") else "_other"


def prediction_folder(log_uri: str, service: str, version: str, hour: str) -> str:
    return storage.join_uri(
        log_uri, f"model={partition_value(service)}", f"version={partition_value(version)}", f"hour={hour}"
    )


def aside_folder(log_uri: str, service: str, hour: str) -> str:
    return storage.join_uri(log_uri, f"model={partition_value(service or '_unknown')}", "aside", f"hour={hour}")


def stats_uri(log_uri: str, hour: str, sink_id: str) -> str:
    return storage.join_uri(log_uri, "sink", f"hour={hour}", f"{partition_value(sink_id)}.json")


def parquet_bytes(rows: list[dict[str, Any]], columns: Iterable[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(columns)
    table = pa.table({name: [row.get(name) for row in rows] for name in names}, schema=_schema(names))
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def _schema(names: list[str]) -> Any:
    import pyarrow as pa

    types = {
        "request_time": pa.timestamp("us", tz="UTC"),
        "response_time": pa.timestamp("us", tz="UTC"),
        "recorded_time": pa.timestamp("us", tz="UTC"),
        "time": pa.timestamp("us", tz="UTC"),
        "received": pa.timestamp("us", tz="UTC"),
        "request": pa.binary(),
        "response": pa.binary(),
        "body": pa.binary(),
        "size": pa.int64(),
    }
    return pa.schema([(name, types.get(name, pa.string())) for name in names])


def hours_between(start: datetime, end: datetime) -> list[str]:
    """The hour partitions a window [start, end) touches."""
    hour = start.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour < end:
        hours.append(hour.strftime(HOUR_FORMAT))
        hour += timedelta(hours=1)
    return hours

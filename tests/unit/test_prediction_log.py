"""The prediction log's events and sink, in process: what KServe's agent sends is read exactly, and the sink
keeps its promise (pairs, drops duplicates, keeps the malformed aside, refuses only when full, never loses what
it acknowledged on a failed write)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from gated_training.predictionlog import EventError, Sink, SinkSettings, parse_event
from gated_training.predictionlog.events import (
    REQUEST_TYPE,
    RESPONSE_TYPE,
    answered_version,
    event_headers,
    format_time,
    go_header_name,
    parse_time,
)

T0 = datetime(2026, 12, 4, 17, 20, 1, 123456, tzinfo=timezone.utc)
V2_RESPONSE = json.dumps({"model_name": "m", "model_version": "20261204T000000000000Z-aaaa", "outputs": []}).encode()


def headers_for(event_id: str, kind: str, moment: datetime = T0, **overrides: str) -> dict[str, str]:
    headers = event_headers(
        event_id=event_id,
        kind=kind,
        source="tabular-classifier-predictor-00001-deployment-5f7",
        time=moment,
        recorded_time=moment,
        inference_service="tabular-classifier",
        namespace="team-ml",
        component="predictor",
        endpoint="default",
        metadata={"X-Request-Id": ["r-1"]},
        content_type="application/json",
    )
    headers.update(overrides)
    return headers


class Clock:
    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now


def make_sink(tmp_path: Path, **settings) -> tuple[Sink, Clock]:
    clock = Clock()
    return Sink(SinkSettings(log_uri=str(tmp_path / "log"), **settings), sink_id="test", clock=clock), clock


def written(tmp_path: Path, pattern: str) -> pd.DataFrame:
    files = sorted((tmp_path / "log").glob(pattern))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def test_an_event_as_kserve_sends_it_is_read_whole():
    event = parse_event(headers_for("call-1", "request"), b'{"inputs": []}')
    assert (event.id, event.kind, event.inference_service, event.namespace) == (
        "call-1",
        "request",
        "tabular-classifier",
        "team-ml",
    )
    assert event.time == T0 and event.metadata == {"X-Request-Id": ["r-1"]} and event.endpoint == "default"
    assert event.content_type == "application/json" and event.body == b'{"inputs": []}'


def test_times_are_read_as_go_writes_them():
    assert format_time(T0) == "2026-12-04T17:20:01.123456Z"
    assert parse_time("2026-12-04T17:20:01.123456789Z", "t") == T0  # nanoseconds: Python keeps microseconds
    assert parse_time("2026-12-04T18:20:01+01:00", "t") == T0.replace(microsecond=0)
    assert format_time(T0.replace(microsecond=0)) == "2026-12-04T17:20:01Z"


def test_header_names_are_compared_as_go_canonicalizes_them():
    assert go_header_name("x-request-id") == "X-Request-Id" and go_header_name("CE-ID") == "Ce-Id"
    assert go_header_name("x_weird name") == "x_weird name"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ce-specversion": "0.3"}, "only 1.0 is read"),
        ({"ce-id": ""}, "no ce-id header"),
        ({"ce-id": "has space"}, "printable ASCII characters without spaces"),
        ({"ce-id": "x" * 257}, "printable ASCII"),
        ({"ce-type": "com.example.other"}, "is not a KServe inference request or response"),
        ({"ce-inferenceservicename": "Not_A_Name"}, "is not a Kubernetes name"),
        ({"ce-namespace": "../etc"}, "is not a Kubernetes name"),
        ({"ce-time": "yesterday"}, "ce-time is not an RFC 3339 time"),
        ({"ce-metadata": "{not json"}, "ce-metadata is not JSON"),
        ({"ce-metadata": '{"X-Request-Id": "r-1"}'}, 'ce-metadata is not {"Header-Name"'),
        ({"ce-source": "pod\x07"}, "ce-source holds control characters"),
        ({"ce-source": "p" * 2000}, "longer than 1024 characters"),
    ],
)
def test_a_malformed_event_is_refused_naming_what_is_wrong(change, message):
    with pytest.raises(EventError, match=message) as caught:
        parse_event(headers_for("call-1", "request", **change), b"{}")
    assert caught.value.kind == "malformed"


def test_percent_encoded_metadata_from_newer_sdks_is_read_too():
    encoded = "{%22X-Request-Id%22:[%22r-1%22]}"
    assert parse_event(headers_for("c", "request", **{"ce-metadata": encoded}), b"").metadata == {
        "X-Request-Id": ["r-1"]
    }


def test_the_answering_version_comes_from_the_response_body():
    assert answered_version(V2_RESPONSE) == "20261204T000000000000Z-aaaa"
    assert answered_version(b'{"predictions": [1], "model_version": "v1"}') == "v1"
    for body in (b"not json", b"[]", b'{"model_version": "../../x"}', b'{"model_version": 7}', b"{}"):
        assert answered_version(body) == "unknown"


def test_request_and_response_are_paired_and_written_by_model_version_and_hour(tmp_path):
    sink, clock = make_sink(tmp_path)
    assert sink.receive(headers_for("call-1", "request"), b'{"inputs": [1]}') == (200, "ok")
    # The response may come first (two workers send concurrently).
    assert sink.receive(headers_for("call-2", "response"), V2_RESPONSE)[0] == 200
    assert sink.receive(headers_for("call-2", "request"), b'{"inputs": [2]}')[0] == 200
    assert sink.receive(headers_for("call-1", "response", T0 + timedelta(milliseconds=4)), V2_RESPONSE)[0] == 200
    result = sink.flush()
    assert (result.predictions, result.aside, result.error) == (2, 0, "")
    rows = written(
        tmp_path, "model=tabular-classifier/version=20261204T000000000000Z-aaaa/hour=2026-12-04T17/*.parquet"
    )
    assert sorted(rows["id"]) == ["call-1", "call-2"]
    first = rows.set_index("id").loc["call-1"]
    assert first["request"] == b'{"inputs": [1]}' and first["response"] == V2_RESPONSE
    assert first["endpoint"] == "default" and json.loads(first["metadata"]) == {"X-Request-Id": ["r-1"]}
    assert first["request_time"] == pd.Timestamp(T0) and first["response_time"] > first["request_time"]
    stats = json.loads((tmp_path / "log" / "sink" / "hour=2026-12-04T17" / "test.json").read_text())
    assert stats["counters"]["accepted"] == 4 and stats["counters"]["written_predictions"] == 2


def test_duplicates_are_acknowledged_and_dropped_by_id(tmp_path):
    sink, _ = make_sink(tmp_path)
    sink.receive(headers_for("call-1", "request"), b"{}")
    assert sink.receive(headers_for("call-1", "request"), b'{"other": 1}') == (200, "duplicate id: dropped")
    sink.receive(headers_for("call-1", "response"), V2_RESPONSE)
    assert sink.receive(headers_for("call-1", "response"), V2_RESPONSE)[1] == "duplicate id: dropped"
    sink.flush()
    assert len(written(tmp_path, "model=*/version=*/hour=*/*.parquet")) == 1
    assert sink.counters["duplicates"] == 2 and sink.counters["paired"] == 1


def test_malformed_and_oversized_events_are_refused_counted_and_kept_aside(tmp_path):
    sink, _ = make_sink(tmp_path, max_event_bytes=100)
    assert sink.receive({"content-type": "text/plain"}, b"<script>alert(1)</script>")[0] == 400
    assert sink.receive(headers_for("big", "request"), b"", size=5000)[0] == 413
    sink.flush()
    aside = written(tmp_path, "model=*/aside/hour=*/*.parquet")
    assert sorted(aside["reason"]) == ["malformed", "oversized"]
    assert aside.set_index("reason").loc["oversized", "size"] == 5000
    assert aside.set_index("reason").loc["malformed", "body"] == b"<script>alert(1)</script>"  # kept, never rendered
    assert (sink.counters["malformed"], sink.counters["oversized"], sink.counters["written_aside"]) == (1, 1, 2)


def test_a_request_without_its_response_is_kept_aside_after_the_pair_timeout(tmp_path):
    sink, clock = make_sink(tmp_path, pair_timeout_seconds=60)
    sink.receive(headers_for("lonely", "request"), b'{"inputs": []}')
    assert sink.flush().aside == 0  # not yet: its response may still come
    clock.now += 61
    assert sink.flush().aside == 1
    aside = written(tmp_path, "model=tabular-classifier/aside/hour=*/*.parquet")
    assert list(aside["reason"]) == ["unpaired_request"] and list(aside["id"]) == ["lonely"]
    assert sink.counters["unpaired_requests"] == 1


def test_a_full_buffer_refuses_with_503_and_counts_what_it_dropped(tmp_path):
    sink, _ = make_sink(tmp_path, max_buffered_events=4)
    statuses = [sink.receive(headers_for(f"c{i}", "request"), b"{}")[0] for i in range(6)]
    assert statuses == [200, 200, 200, 200, 503, 503]
    assert sink.counters["refused_full"] == 2 and sink.counters["accepted"] == 4
    assert sink.flush(final=True).aside == 4  # on SIGTERM everything held is written
    assert sink.receive(headers_for("c9", "request"), b"{}")[0] == 200  # room again


def test_a_failed_write_keeps_everything_and_the_next_flush_writes_it(tmp_path):
    sink, _ = make_sink(tmp_path)
    (tmp_path / "log").write_text("a file where the prefix should be")  # the bucket refuses every write
    sink.receive(headers_for("c1", "request"), b"{}")
    sink.receive(headers_for("c1", "response"), V2_RESPONSE)
    sink.receive({}, b"garbage")
    result = sink.flush()
    assert result.error and sink.held() == 3 and sink.counters["write_errors"] >= 1
    (tmp_path / "log").unlink()
    result = sink.flush()
    assert (result.predictions, result.aside, result.error) == (1, 1, "") and sink.held() == 0


def test_unknown_versions_are_written_apart_and_counted(tmp_path):
    sink, _ = make_sink(tmp_path)
    sink.receive(headers_for("c1", "request"), b"{}")
    sink.receive(headers_for("c1", "response"), b'{"predictions": [1]}')
    sink.flush()
    assert len(written(tmp_path, "model=tabular-classifier/version=unknown/hour=*/*.parquet")) == 1
    assert sink.counters["unknown_version"] == 1


def test_event_types_are_kserves():
    assert REQUEST_TYPE == "org.kubeflow.serving.inference.request"
    assert RESPONSE_TYPE == "org.kubeflow.serving.inference.response"

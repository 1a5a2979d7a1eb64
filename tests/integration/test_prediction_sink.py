"""The sink as a process on loopback, fed real binary-mode CloudEvents: from an independent encoder (the
CloudEvents Python SDK), from the stand-in of KServe's agent in front of a live server, and under load with
SIGTERM and SIGKILL mid-stream. What it acknowledged is on the bucket; what a SIGKILL cost is counted."""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import timedelta

import pandas as pd
import pytest
from cloudevents.v1.http import CloudEvent, to_binary

from gated_training.predictionlog.events import REQUEST_TYPE, RESPONSE_TYPE
from tests.sink_process import Poster, sink_process, written_ids
from tests.unit.test_prediction_log import T0, V2_RESPONSE, headers_for

pytestmark = pytest.mark.integration


def sdk_event(event_id: str, kind: str) -> tuple[dict[str, str], bytes]:
    """An event as the CloudEvents SDK encodes it in binary mode, with KServe's attributes."""
    attributes = {
        "specversion": "1.0",
        "id": event_id,
        "type": REQUEST_TYPE if kind == "request" else RESPONSE_TYPE,
        "source": "tabular-classifier-predictor-abc",
        "time": T0.isoformat(),
        "inferenceservicename": "tabular-classifier",
        "namespace": "team-ml",
        "component": "predictor",
        "endpoint": "canary",
        "metadata": json.dumps({"X-Request-Id": ["r-9"]}),
        "datacontenttype": "application/json",
    }
    data = b'{"inputs": []}' if kind == "request" else V2_RESPONSE
    headers, body = to_binary(CloudEvent(attributes, data))
    return {k.lower(): v for k, v in headers.items()}, body


def test_events_from_an_independent_encoder_are_paired_and_written(tmp_path):
    log = tmp_path / "log"
    with sink_process(tmp_path, str(log), "--flush-seconds", "0.2") as sink:
        poster = Poster(sink.port)
        for kind in ("request", "response"):
            assert poster.post(*sdk_event("sdk-1", kind)) == 200
        assert poster.post({"content-type": "application/json"}, b'{"not": "an event"}') == 400
        assert sink.stop() == 0
    predictions, aside = written_ids(log)
    assert predictions == {"sdk-1"}
    (path,) = log.glob("model=tabular-classifier/version=*/hour=*/*.parquet")
    row = pd.read_parquet(path).iloc[0]
    assert row["endpoint"] == "canary" and json.loads(row["metadata"]) == {"X-Request-Id": ["r-9"]}
    assert "prediction-log sink: stopped" in sink.log


def stream(port: int, acknowledged: list[str], stop: threading.Event, prefix: str) -> None:
    """Post request/response pairs as fast as one connection allows, recording each acknowledged id."""
    poster = Poster(port)
    number = 0
    while not stop.is_set():
        number += 1
        event_id = f"{prefix}-{number}"
        moment = T0 + timedelta(milliseconds=number)
        for kind, body in (("request", b'{"inputs": [1]}'), ("response", V2_RESPONSE)):
            status = poster.post(headers_for(event_id, kind, moment), body)
            if status == 200:
                acknowledged.append(f"{event_id}/{kind}")
            elif status == 0:
                return  # the sink is gone


def run_stream_then(sink, signal_number: int, seconds: float) -> list[str]:
    acknowledged: list[str] = []
    stop = threading.Event()
    senders = [threading.Thread(target=stream, args=(sink.port, acknowledged, stop, f"s{i}")) for i in range(3)]
    for sender in senders:
        sender.start()
    time.sleep(seconds)
    sink.process.send_signal(signal_number)
    sink.process.wait(timeout=60)
    stop.set()
    for sender in senders:
        sender.join(timeout=30)
    return acknowledged


def test_sigterm_mid_stream_loses_nothing_it_acknowledged(tmp_path):
    log = tmp_path / "log"
    with sink_process(tmp_path, str(log), "--flush-seconds", "1", "--flush-events", "500") as sink:
        acknowledged = run_stream_then(sink, signal.SIGTERM, 3.0)
    predictions, aside = written_ids(log)
    lost = [a for a in acknowledged if a.split("/")[0] not in predictions | aside]
    assert len(acknowledged) > 1000, "the stream was too slow to prove anything"
    assert not lost, f"{len(lost)} acknowledged events are not on the bucket: {lost[:5]}"
    assert sink.process.returncode == 0, sink.log


def test_sigkill_loses_at_most_the_documented_buffer(tmp_path):
    log = tmp_path / "log"
    buffer = 2000
    with sink_process(
        tmp_path, str(log), "--flush-seconds", "0.5", "--flush-events", "200", "--max-buffered-events", str(buffer)
    ) as sink:
        acknowledged = run_stream_then(sink, signal.SIGKILL, 3.0)
    predictions, aside = written_ids(log)
    lost = {a.split("/")[0] for a in acknowledged} - predictions - aside
    assert len(acknowledged) > 1000
    # Each lost call is one or two buffered events; the buffer never held more than its bound.
    assert len(lost) <= buffer, f"{len(lost)} calls lost, more than the buffer of {buffer} events"
    print(f"\n  SIGKILL after {len(acknowledged)} acknowledged events: {len(lost)} calls lost (bound {buffer} events)")
    # A SIGKILL inside a write can leave that write's temp file on a local disk (an object store has none):
    # it is hidden, and no listing the monitors read from shows it.
    from gated_training.data import storage

    for path in log.rglob("*.tmp"):
        assert path.name.startswith("."), f"a half-written file is visible: {path}"
        assert path.name not in storage.list_files(str(path.parent)), path


class Predictor(threading.Thread):
    """A stand-in predictor on loopback: /ok answers 200 with a model_version, /fail answers 500."""

    def __init__(self) -> None:
        import http.server

        super().__init__(daemon=True)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                status, body = (200, V2_RESPONSE) if self.path == "/ok" else (500, b'{"error": "boom"}')
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def run(self) -> None:
        self.server.serve_forever()


def test_the_agent_stand_in_logs_as_kserves_agent_does(tmp_path):
    """Ce-Id becomes the event id, a 500 logs the request only, metadata headers are matched by their Go
    spelling, and the sink pairs what the agent sent."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT
    from tests.mlflow_server import free_port

    predictor = Predictor()
    predictor.start()
    log = tmp_path / "log"
    with sink_process(tmp_path, str(log), "--flush-seconds", "0.2", "--pair-timeout-seconds", "0.5") as sink:
        port = free_port()
        agent = subprocess.Popen(
            [
                sys.executable, "-m", "gated_training.predictionlog.agent",
                "--predictor", f"http://127.0.0.1:{predictor.port}", "--log-url", sink.url,
                "--inference-service", "tabular-classifier", "--namespace", "local", "--endpoint", "canary",
                "--metadata-headers", "X-Request-Id", "--port", str(port),
            ],
            cwd=REPO_ROOT, stdout=(tmp_path / "agent.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            client = Poster(port)
            deadline = time.monotonic() + 30
            while client.post({"ce-id": "warm-up"}, b"{}") == 0:
                assert time.monotonic() < deadline and agent.poll() is None, (tmp_path / "agent.log").read_text()
                time.sleep(0.2)
            client.connection.request("POST", "/ok", body=b"{}", headers={"Ce-Id": "order-17", "x-request-id": "r-17"})
            assert client.connection.getresponse().read() == V2_RESPONSE
            client.connection.request("POST", "/fail", body=b"{}", headers={"Ce-Id": "order-18"})
            failed = client.connection.getresponse()
            assert failed.status == 500 and failed.read() == b'{"error": "boom"}'
            client.connection.request("POST", "/ok", body=b"{}", headers={"X-REQUEST-ID": "r-19"})
            client.connection.getresponse().read()
            time.sleep(1.5)
        finally:
            agent.terminate()
            agent.wait(timeout=30)
        assert sink.stop() == 0
    predictions, aside = written_ids(log)
    assert "order-17" in predictions and "order-18" in aside  # no response event for a 500
    rows = pd.concat([pd.read_parquet(p) for p in log.glob("model=*/version=*/hour=*/*.parquet")])
    by_id = rows.set_index("id")
    assert json.loads(by_id.loc["order-17", "metadata"]) == {"X-Request-Id": ["r-17"]}
    generated = [i for i in predictions if i not in ("order-17", "warm-up")]
    assert len(generated) == 1 and len(generated[0]) == 36  # a UUID when the caller sent no Ce-Id
    assert json.loads(by_id.loc[generated[0], "metadata"]) == {"X-Request-Id": ["r-19"]}
    assert set(by_id["endpoint"]) == {"canary"}

"""train-model asks for its MLflow experiment before it trains, without importing MLflow when the store answers
clearly (``tracking.probe_experiment``): over a real ``mlflow server``'s REST API on loopback and from a SQLite
store's file, the probe reads the id MLflow's own client reads. Every reply that is not clear-cut (a hostile or
broken server, a file that is not MLflow's) falls back to MLflow's client: the probe never invents an id."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from gated_training.tracking.runs import TO_BE_CREATED, client, probe_experiment
from tests.mlflow_server import mlflow_server


def test_a_tracking_server_and_a_sqlite_file_give_the_id_mlflows_client_gives(tmp_path):
    with mlflow_server(tmp_path) as url:
        made = client(url).create_experiment("probe me")
        assert probe_experiment(url, "probe me") == made
        assert probe_experiment(url, "never made") == TO_BE_CREATED
        assert probe_experiment(url + "/", "probe me") == made
    store = f"sqlite:///{tmp_path / 'local.db'}"
    assert probe_experiment(store, "probe me") == TO_BE_CREATED  # no file yet: MLflow creates it when it logs
    assert probe_experiment(f"sqlite:///{tmp_path / 'no-folder' / 'x.db'}", "probe me") is None  # MLflow says why
    (tmp_path / "a-folder.db").mkdir()
    assert probe_experiment(f"sqlite:///{tmp_path / 'a-folder.db'}", "probe me") is None
    made = client(store).create_experiment("probe me")
    assert probe_experiment(store, "probe me") == made
    assert probe_experiment(store, "never made") == TO_BE_CREATED
    (tmp_path / "not-mlflow.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    assert probe_experiment(f"sqlite:///{tmp_path / 'not-mlflow.db'}", "probe me") is None
    (tmp_path / "empty.db").touch()
    assert probe_experiment(f"sqlite:///{tmp_path / 'empty.db'}", "probe me") is None


def test_stores_the_probe_does_not_speak_go_to_mlflows_client(tmp_path, monkeypatch):
    assert probe_experiment("http://127.0.0.1:9", "x") is None  # nothing listens: MLflow retries and words it
    assert probe_experiment(f"file://{tmp_path}", "x") is None
    assert probe_experiment("databricks", "x") is None
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "some_plugin")
    assert probe_experiment("http://127.0.0.1:9", "x") is None


class _Replies:
    """A stand-in tracking server: each GET answers with the next (status, body); it records the headers."""

    def __init__(self) -> None:
        self.replies: list[tuple[int, bytes]] = []
        self.seen: list[dict[str, str]] = []


@pytest.fixture()
def stand_in() -> Iterator[tuple[str, _Replies]]:
    replies = _Replies()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            replies.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            status, body = replies.replies.pop(0)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if 300 <= status < 400:  # to this same server: a followed redirect would show as a second request
                self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/steal")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", replies
    finally:
        server.shutdown()
        server.server_close()


def _experiment(name: str = "tests", experiment_id: object = "7") -> bytes:
    return json.dumps(
        {"experiment": {"experiment_id": experiment_id, "name": name, "lifecycle_stage": "active"}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b'{"error_code": "INTERNAL_ERROR"}'),
        (503, b"upstream down"),
        (401, b'{"error_code": "UNAUTHENTICATED"}'),
        (403, b'{"error_code": "PERMISSION_DENIED"}'),
        (404, b"<html>not an MLflow server</html>"),
        (404, b'{"error_code": "ENDPOINT_NOT_FOUND"}'),
        (200, b"not json"),
        (200, b"[]"),
        (200, b'{"experiment": null}'),
        (200, _experiment(name="someone else's")),
        (200, _experiment(experiment_id="../../etc")),
        (200, _experiment(experiment_id=7)),
        (200, b'{"experiment": {"experiment_id": "7"}}'),
        (302, b""),
    ],
    ids=lambda value: str(value)[:40],
)
def test_a_reply_that_is_not_clear_cut_goes_to_mlflows_client(stand_in, status, body):
    url, replies = stand_in
    replies.replies.append((status, body))
    replies.replies.append((200, _experiment()))  # what a followed redirect would read
    assert probe_experiment(url, "tests", timeout=5) is None
    assert [seen["path"] for seen in replies.seen] == ["/api/2.0/mlflow/experiments/get-by-name?experiment_name=tests"]


def test_the_probe_sends_mlflows_credentials_and_never_puts_them_in_the_url(stand_in, monkeypatch):
    url, replies = stand_in
    replies.replies += [(200, _experiment(name="a b&c")), (200, _experiment()), (200, _experiment())]
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")
    assert probe_experiment(url, "a b&c") == "7"
    assert replies.seen[-1]["authorization"] == "Bearer t0ken"
    assert replies.seen[-1]["path"].endswith("experiment_name=a+b%26c")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ann")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    assert probe_experiment(url, "tests") == "7"
    assert replies.seen[-1]["authorization"] == "Basic " + base64.b64encode(b"ann:s3cret").decode()
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with_userinfo = url.replace("http://", "http://bob:p%40ss@")
    assert probe_experiment(with_userinfo, "tests") == "7"
    assert replies.seen[-1]["authorization"] == "Basic " + base64.b64encode(b"bob:p@ss").decode()
    assert all("bob" not in seen["path"] and "t0ken" not in seen["path"] for seen in replies.seen)


def test_a_certificate_file_that_does_not_load_goes_to_mlflows_client(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_CLIENT_CERT_PATH", str(tmp_path / "missing.pem"))
    assert probe_experiment("https://127.0.0.1:9", "x", timeout=5) is None
    monkeypatch.delenv("MLFLOW_TRACKING_CLIENT_CERT_PATH")
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(tmp_path / "missing-ca.pem"))
    assert probe_experiment("https://127.0.0.1:9", "x", timeout=5) is None


@pytest.mark.parametrize(
    ("status", "body"), [(500, b'{"error_code": "INTERNAL_ERROR"}'), (200, b"not json")], ids=["500", "not-json"]
)
def test_a_hostile_tracking_server_fails_train_model_before_training_with_mlflows_words(
    stand_in, tmp_path, monkeypatch, status, body
):
    """The probe has no clear answer, so MLflow's client asks the same server, which fails the step before any
    fold or fit runs, naming the server; nothing is written."""
    from gated_training.errors import TrackingError
    from gated_training.steps import train_model as step
    from tests.builders import train_candidate
    from tests.conftest import synthetic_frame

    url, replies = stand_in
    replies.replies += [(status, body)] * 20
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    trained: list[str] = []
    monkeypatch.setattr(step, "cross_validate_accuracy", lambda *args: trained.append("cv"))
    monkeypatch.setattr(step, "fit_lean", lambda *args: trained.append("fit"))
    with pytest.raises(TrackingError, match=rf"MLflow at {url}: opening experiment 'tests' failed"):
        train_candidate(tmp_path, synthetic_frame(200), tracking_uri=url)
    assert trained == [] and not (tmp_path / "model.joblib").exists()
    assert len(replies.seen) >= 2  # the probe, then MLflow's client

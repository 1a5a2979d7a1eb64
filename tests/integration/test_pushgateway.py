"""Each run's result on a real Pushgateway (Debian's, on loopback): the series the alert rules read, grouped by
model, the last deploy kept across blocked runs, the blocked streak, a monitoring window's numbers replaced by the
next window's, hostile feature names kept as escaped label values; and a Pushgateway that is down, slow or
misconfigured never fails a run nor holds it past the deadline."""

from __future__ import annotations

import time

import pytest

from gated_training.reports import PUSHGATEWAY_ENV, push
from tests.loopback import LoopbackServer
from tests.pushgateway_process import pushgateway, scrape


def series(samples: dict, name: str, **labels: str) -> float | None:
    for (metric, pairs), value in samples.items():
        if metric == name and all(dict(pairs).get(k) == v for k, v in labels.items()):
            return value
    return None


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    with pushgateway(tmp_path) as url:
        monkeypatch.setenv(PUSHGATEWAY_ENV, url)
        yield url


def test_training_runs_push_outcome_streak_and_the_last_deploy(gateway):
    job = {"job": push.TRAINING_JOB, "model": "m"}
    assert push.push_training("m", {"outcome": "deployed"}, now=1000) == "pushed"
    for now in (2000, 3000, 4000):
        assert push.push_training("m", {"outcome": "blocked"}, now=now) == "pushed"
    samples = scrape(gateway)
    assert series(samples, "gated_training_training_blocked_streak", **job) == 3
    assert series(samples, "gated_training_training_last_deploy_timestamp_seconds", **job) == 1000
    assert series(samples, "gated_training_training_last_success_timestamp_seconds", **job) == 4000
    assert series(samples, "gated_training_training_outcome", outcome="blocked", **job) == 1
    assert series(samples, "gated_training_training_outcome", outcome="deployed", **job) == 0
    assert push.push_training("m", {"outcome": "failed"}, now=5000) == "pushed"
    samples = scrape(gateway)
    assert series(samples, "gated_training_training_last_failure_timestamp_seconds", **job) == 5000
    assert series(samples, "gated_training_training_blocked_streak", **job) == 3  # a failure decides nothing
    assert push.push_training("m", {"outcome": "deployed"}, now=6000) == "pushed"
    samples = scrape(gateway)
    assert series(samples, "gated_training_training_blocked_streak", **job) == 0
    assert series(samples, "gated_training_training_last_deploy_timestamp_seconds", **job) == 6000
    assert (
        series(samples, "gated_training_training_last_run_timestamp_seconds", job=push.TRAINING_JOB, model="other")
        is None
    )


def window(outcome: str, realized: bool, feature: str = "age") -> dict:
    view = {
        "version": "v1",
        "role": "champion",
        "calls": 500,
        "label_coverage": 0.4,
        "prediction_psi": 0.3,
        "gate_min_accuracy": 0.7,
        "drift": {"drifted_share": 0.5, "features": [{"feature": feature, "psi": 1.2, "drifted": True}]},
        "estimated": {"accuracy": 0.66, "high": 0.69, "trusted": True},
    }
    if realized:
        view["realized"] = {"accuracy": 0.6, "low": 0.55, "high": 0.65, "rows": 400, "gate_accuracy": 0.77}
    return {
        "model_name": "m",
        "outcome": outcome,
        "versions": [view],
        "settings": {"monitoring": {"prediction_psi_threshold": 0.2, "min_label_coverage": 0.5, "window_hours": 24}},
        "comparison": None,
    }


def test_a_monitoring_window_replaces_the_last_ones_numbers(gateway):
    job = {"job": push.MONITORING_JOB, "model": "m", "version": "v1"}
    hostile = 'a"b\\c\n<script>{x="y"}'
    assert push.push_monitoring(window("retrain", True, hostile), 86400, now=100) == "pushed"
    samples = scrape(gateway)
    assert series(samples, "gated_training_monitoring_realized_accuracy_high", role="champion", **job) == 0.65
    assert series(samples, "gated_training_monitoring_gate_min_accuracy", **job) == 0.7
    assert series(samples, "gated_training_monitoring_feature_drifted", feature=hostile, **job) == 1
    assert series(samples, "gated_training_monitoring_outcome", job=push.MONITORING_JOB, outcome="retrain") == 1
    assert series(samples, "gated_training_monitoring_window_seconds", job=push.MONITORING_JOB, model="m") == 86400
    assert push.push_monitoring(window("no_labels_yet", False), 86400, now=200) == "pushed"
    samples = scrape(gateway)
    assert series(samples, "gated_training_monitoring_realized_accuracy_high", **job) is None  # not left stale
    assert series(samples, "gated_training_monitoring_feature_drifted", feature=hostile, **job) is None
    assert series(samples, "gated_training_monitoring_last_success_timestamp_seconds", job=push.MONITORING_JOB) == 200


def test_a_pushgateway_down_slow_or_misconfigured_never_fails_or_holds_a_run(monkeypatch):
    from gated_training.serving.local_server import free_port

    monkeypatch.setenv(PUSHGATEWAY_ENV, f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert push.push_training("m", {"outcome": "blocked"}).startswith("not pushed: URLError")
    assert time.monotonic() - started < push.PUSH_DEADLINE_SECONDS + 1

    import http.server

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(30)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = LoopbackServer()
    server.start_serving(Slow)
    with server:
        monkeypatch.setenv(PUSHGATEWAY_ENV, server.url)
        started = time.monotonic()
        result = push.push_training("m", {"outcome": "blocked"})
        assert result.startswith("not pushed") and time.monotonic() - started < push.PUSH_DEADLINE_SECONDS + 1.5
    for bad in ("ftp://host/", "http://", "http://host/a b", "file:///etc/passwd"):
        monkeypatch.setenv(PUSHGATEWAY_ENV, bad)
        assert push.push_training("m", {"outcome": "blocked"}) == f"not pushed: {PUSHGATEWAY_ENV} is not an http(s) URL"
    monkeypatch.delenv(PUSHGATEWAY_ENV)
    assert push.push_training("m", {"outcome": "blocked"}) == "not configured"

"""Each training and monitoring run's result, pushed to a Prometheus Pushgateway when one is configured
(``GATED_TRAINING_PUSHGATEWAY_URL``; ``make compile PUSHGATEWAY_URL=…`` sets it on every step), for the alert rules
and the dashboard in ``observability/`` (docs/observability.md).

Groups: ``job="gated-training-training"`` and ``job="gated-training-monitoring"``, each by ``model``. A training push
adds to its group (HTTP POST): a metric it sends replaces that metric's series, the others stay, so the time of the
last deploy survives the runs that deploy nothing. A monitoring push replaces its group (PUT): what a window did not
measure is gone. Every push carries the time of the run (``…_last_run_timestamp_seconds``)
and, when the run got to a decision, of the last success; a blocked or failed run says so (``…_outcome{outcome}``,
``…_last_failure_timestamp_seconds``), and the alert rules read numbers only while the run that measured them is
fresh. A Pushgateway that is down or slow never fails a run and never holds it past ``PUSH_DEADLINE_SECONDS``: the
run records that it could not publish.
"""

from __future__ import annotations

import math
import os
import time
import urllib.error
import urllib.request
from typing import Any, Iterable

PUSHGATEWAY_ENV = "GATED_TRAINING_PUSHGATEWAY_URL"
PUSH_DEADLINE_SECONDS = 5.0
TRAINING_JOB = "gated-training-training"
MONITORING_JOB = "gated-training-monitoring"
TRAINING_OUTCOMES = ("deployed", "blocked", "skipped", "failed")
MONITORING_OUTCOMES = ("ok", "warn", "alert", "retrain", "no_traffic", "no_labels_yet")
MAX_FEATURES = 200

TRAINING_METRICS = (
    "gated_training_training_last_run_timestamp_seconds",
    "gated_training_training_last_success_timestamp_seconds",
    "gated_training_training_last_deploy_timestamp_seconds",
    "gated_training_training_last_failure_timestamp_seconds",
    "gated_training_training_outcome",
    "gated_training_training_blocked_streak",
)
MONITORING_METRICS = (
    "gated_training_monitoring_last_run_timestamp_seconds",
    "gated_training_monitoring_last_success_timestamp_seconds",
    "gated_training_monitoring_window_seconds",
    "gated_training_monitoring_outcome",
    "gated_training_monitoring_threshold",
    "gated_training_monitoring_calls",
    "gated_training_monitoring_realized_accuracy",
    "gated_training_monitoring_realized_accuracy_low",
    "gated_training_monitoring_realized_accuracy_high",
    "gated_training_monitoring_realized_rows",
    "gated_training_monitoring_gate_accuracy",
    "gated_training_monitoring_gate_min_accuracy",
    "gated_training_monitoring_estimated_accuracy",
    "gated_training_monitoring_estimated_accuracy_high",
    "gated_training_monitoring_label_coverage",
    "gated_training_monitoring_prediction_psi",
    "gated_training_monitoring_drifted_share",
    "gated_training_monitoring_feature_psi",
    "gated_training_monitoring_feature_drifted",
    "gated_training_monitoring_champion_worse",
    "gated_training_monitoring_canary_worse",
    "gated_training_monitoring_canary_healthy_windows",
)


def pushgateway_url() -> tuple[str, str]:
    """(the Pushgateway's base URL, or empty; what to record when nothing is pushed)."""
    from urllib.parse import urlsplit

    url = os.environ.get(PUSHGATEWAY_ENV, "").strip().rstrip("/")
    if not url:
        return "", "not configured"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c in url for c in " \n\r\t"):
        return "", f"not pushed: {PUSHGATEWAY_ENV} is not an http(s) URL"
    return url, ""


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


class _Families:
    """Gauges for one push, in a registry of their own (nothing else in the process is pushed)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry()
        self._gauges: dict[str, Any] = {}

    def gauge(self, name: str, doc: str, labels: Iterable[str] = ()) -> Any:
        from prometheus_client import Gauge

        if name not in self._gauges:
            self._gauges[name] = Gauge(name, doc, list(labels), registry=self.registry)
        return self._gauges[name]

    def set(self, metric: str, doc: str, value: Any, **labels: str) -> None:
        number = _finite(value)
        gauge = self.gauge(metric, doc, labels.keys())
        if number is not None:
            (gauge.labels(**labels) if labels else gauge).set(number)


def _push(url: str, job: str, model: str, families: _Families, deadline: float, replace: bool = False) -> str:
    """Add the families to the group (POST), or replace the group with them (PUT); "pushed", or why not (never
    raises)."""
    from prometheus_client import push_to_gateway, pushadd_to_gateway

    def handler(url: str, method: str, timeout: Any, headers: list[tuple[str, str]], data: bytes) -> Any:
        def send() -> None:
            request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
            remaining = max(0.1, deadline - time.monotonic())
            with urllib.request.urlopen(request, timeout=remaining) as response:
                if response.status >= 400:
                    raise OSError(f"HTTP {response.status}")

        return send

    try:
        if time.monotonic() >= deadline:
            return f"not pushed: no time left within {PUSH_DEADLINE_SECONDS:g} s"
        send = push_to_gateway if replace else pushadd_to_gateway
        send(url, job=job, registry=families.registry, grouping_key={"model": model}, handler=handler)
        return "pushed"
    except (OSError, urllib.error.URLError, ValueError) as exc:
        return f"not pushed: {type(exc).__name__}: {str(exc)[:200]}"


def _previous(url: str, job: str, model: str, metric: str, deadline: float) -> float:
    """A metric's value in the group as the Pushgateway holds it now (0 when absent or unreadable)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        remaining = max(0.1, deadline - time.monotonic())
        with urllib.request.urlopen(f"{url}/metrics", timeout=remaining) as response:
            text = response.read(32 * 2**20).decode("utf-8", "replace")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == metric and sample.labels.get("job") == job and sample.labels.get("model") == model:
                    return float(sample.value)
    except (OSError, ValueError, urllib.error.URLError):
        return 0.0
    return 0.0


def push_training(model: str, summary: dict[str, Any], now: float | None = None) -> str:
    """A training run that ended (deployed, blocked, skipped) or failed."""
    url, why = pushgateway_url()
    if not url:
        return why
    deadline = time.monotonic() + PUSH_DEADLINE_SECONDS
    now = time.time() if now is None else now
    outcome = str(summary.get("outcome") or "failed")
    families = _Families()
    families.set("gated_training_training_last_run_timestamp_seconds", "When the last training run ended", now)
    outcomes = families.gauge(
        "gated_training_training_outcome", "How the last run ended (1 for its outcome)", ["outcome"]
    )
    for name in TRAINING_OUTCOMES:
        outcomes.labels(outcome=name).set(1.0 if name == outcome else 0.0)
    if outcome == "failed":
        families.set("gated_training_training_last_failure_timestamp_seconds", "When a run last failed", now)
    else:
        families.set("gated_training_training_last_success_timestamp_seconds", "When a run last decided", now)
    if outcome == "deployed":
        families.set("gated_training_training_last_deploy_timestamp_seconds", "When a version was last deployed", now)
    if outcome in ("blocked", "deployed", "skipped"):
        previous = _previous(url, TRAINING_JOB, model, "gated_training_training_blocked_streak", deadline)
        families.set(
            "gated_training_training_blocked_streak",
            "Training runs blocked in a row (0 after one that was not)",
            previous + 1 if outcome == "blocked" else 0,
        )
    return _push(url, TRAINING_JOB, model, families, deadline)


def push_monitoring(document: dict[str, Any], window_seconds: float, now: float | None = None) -> str:
    """A monitoring window: its outcome, thresholds and each served version's numbers (``MonitoringOutcome``)."""
    url, why = pushgateway_url()
    if not url:
        return why
    deadline = time.monotonic() + PUSH_DEADLINE_SECONDS
    now = time.time() if now is None else now
    model = str(document["model_name"])
    families = _Families()
    families.set("gated_training_monitoring_last_run_timestamp_seconds", "When the last monitoring run ended", now)
    families.set(
        "gated_training_monitoring_last_success_timestamp_seconds", "When a monitoring run last reached a verdict", now
    )
    families.set("gated_training_monitoring_window_seconds", "The window each monitoring run reads", window_seconds)
    gauge = families.gauge(
        "gated_training_monitoring_outcome", "How the last window ended (1 for its outcome)", ["outcome"]
    )
    for name in MONITORING_OUTCOMES:
        gauge.labels(outcome=name).set(1.0 if name == document["outcome"] else 0.0)
    monitoring = (document.get("settings") or {}).get("monitoring") or {}
    for name in ("prediction_psi_threshold", "min_label_coverage", "max_accuracy_drop"):
        families.set(
            "gated_training_monitoring_threshold", "The monitoring thresholds", monitoring.get(name), name=name
        )
    for name in MONITORING_METRICS[5:]:
        families.gauge(name, "See docs/observability.md", _labels_of(name))
    for view in document.get("versions") or []:
        version, role = str(view["version"]), str(view["role"])
        base = {"version": version, "role": role}
        families.set("gated_training_monitoring_calls", "", view.get("calls"), **base)
        realized = view.get("realized") or {}
        if realized:
            families.set("gated_training_monitoring_realized_accuracy", "", realized.get("accuracy"), **base)
            families.set("gated_training_monitoring_realized_accuracy_low", "", realized.get("low"), **base)
            families.set("gated_training_monitoring_realized_accuracy_high", "", realized.get("high"), **base)
            families.set("gated_training_monitoring_realized_rows", "", realized.get("rows"), **base)
            families.set("gated_training_monitoring_gate_accuracy", "", realized.get("gate_accuracy"), version=version)
        if view.get("gate_min_accuracy") is not None:
            families.set("gated_training_monitoring_gate_min_accuracy", "", view["gate_min_accuracy"], version=version)
        estimated = view.get("estimated") or {}
        if estimated:
            trusted = "true" if estimated.get("trusted") else "false"
            families.set(
                "gated_training_monitoring_estimated_accuracy", "", estimated.get("accuracy"), version=version,
                trusted=trusted,
            )  # fmt: skip
            families.set(
                "gated_training_monitoring_estimated_accuracy_high", "", estimated.get("high"), version=version,
                trusted=trusted,
            )  # fmt: skip
        families.set("gated_training_monitoring_label_coverage", "", view.get("label_coverage"), **base)
        families.set("gated_training_monitoring_prediction_psi", "", view.get("prediction_psi"), **base)
        drift = view.get("drift") or {}
        families.set("gated_training_monitoring_drifted_share", "", drift.get("drifted_share"), **base)
        for feature in (drift.get("features") or [])[:MAX_FEATURES]:
            name = str(feature.get("feature"))[:128]
            families.set("gated_training_monitoring_feature_psi", "", feature.get("psi"), **base, feature=name)
            families.set(
                "gated_training_monitoring_feature_drifted", "", 1.0 if feature.get("drifted") else 0.0, **base,
                feature=name,
            )  # fmt: skip
    comparison = document.get("comparison") or {}
    if comparison.get("versions"):
        champion, other = comparison["versions"]
        families.set(
            "gated_training_monitoring_champion_worse", "", 1.0 if comparison.get("worse") else 0.0,
            version=str(champion), other=str(other),
        )  # fmt: skip
    canary = document.get("canary") or {}
    if canary.get("canary"):
        pair = {"version": str(canary["canary"]), "other": str(canary.get("stable"))}
        families.set(
            "gated_training_monitoring_canary_worse", "", 1.0 if canary.get("verdict") == "worse" else 0.0, **pair
        )
        families.set("gated_training_monitoring_canary_healthy_windows", "", canary.get("healthy_windows"), **pair)
    # The window replaces the whole group (PUT): a number an older window measured and this one did not is gone,
    # never left to look current.
    return _push(url, MONITORING_JOB, model, families, deadline, replace=True)


def _labels_of(name: str) -> list[str]:
    if name in ("gated_training_monitoring_gate_accuracy", "gated_training_monitoring_gate_min_accuracy"):
        return ["version"]
    if name.startswith("gated_training_monitoring_estimated"):
        return ["version", "trusted"]
    if name.startswith("gated_training_monitoring_feature"):
        return ["version", "role", "feature"]
    if name in (
        "gated_training_monitoring_champion_worse",
        "gated_training_monitoring_canary_worse",
        "gated_training_monitoring_canary_healthy_windows",
    ):
        return ["version", "other"]
    return ["version", "role"]

"""The canary's judgement as pure functions: every criterion's rule on its edges, the row of healthy windows, the
action, and Prometheus' answers read as hostile input."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from gated_training.monitoring import Side, action_for, healthy_in_a_row, judge
from gated_training.monitoring.live import _vector, promql_string, queries_for, read_live

END = datetime(2026, 12, 4, 18, tzinfo=timezone.utc)


def live(requests=(5000, 45000), errors=None, p95=(0.03, 0.03)) -> dict:
    """Prometheus' numbers for new and old (None: no series)."""

    def pair(values):
        return {k: v for k, v in zip(("new", "old"), values) if v is not None} if values else {}

    return {"requests": pair(requests), "errors": pair(errors), "p95_seconds": pair(p95)}


def answer(result, kind: str = "vector") -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": kind, "result": result}}).encode()


def window(**overrides):
    options = dict(
        canary="new",
        stable="old",
        window_end=END.isoformat(),
        sides={
            "new": Side(500, ["good"] * 300 + ["bad"] * 200, 0),
            "old": Side(4500, ["good"] * 2700 + ["bad"] * 1800, 0),
        },
        live={
            "requests": {"new": 5000, "old": 45000},
            "errors": {"new": 0, "old": 5},
            "p95_seconds": {"new": 0.03, "old": 0.03},
        },
        comparison={"difference": 0.01, "low": -0.005, "high": 0.02, "p_value": 0.4, "test": "McNemar"},
        labels_expected=True,
        labelled=400,
        min_calls=100,
        min_labelled=100,
        max_error_rate_increase=0.01,
        max_latency_ratio=1.25,
        psi_threshold=0.2,
        max_regression=0.02,
    )
    options.update(overrides)
    return judge(**options)


def results(judged) -> dict[str, str]:
    return {e.criterion: e.result for e in judged.evidence}


def test_a_canary_like_the_stable_version_on_every_criterion_is_healthy():
    judged = window()
    assert judged.verdict == "healthy", [e.text for e in judged.evidence]
    assert set(results(judged).values()) == {"healthy"}
    assert "5000" not in judged.evidence[0].text and "canary new answered 500 logged calls" in judged.evidence[0].text


@pytest.mark.parametrize(
    ("overrides", "criterion", "result"),
    [
        ({"live": live(errors=(500, 45))}, "errors", "worse"),
        ({"live": live(requests=(300, 3000), errors=(2, 0))}, "errors", "hold"),
        ({"live": live(p95=(0.08, 0.03))}, "latency", "worse"),
        ({"live": live(p95=(None, 0.03))}, "latency", "hold"),
        ({"live": {"error": "Prometheus p: requests not read (URLError: refused)"}}, "errors", "hold"),
        ({"comparison": {"difference": -0.06, "low": -0.09, "high": -0.03, "p_value": 0.001}}, "accuracy", "worse"),
        ({"comparison": {"difference": -0.03, "low": -0.07, "high": 0.01, "p_value": 0.2}}, "accuracy", "hold"),
        ({"labelled": 50}, "accuracy", "hold"),
        ({"sides": {"new": Side(500, ["bad"] * 500, 0), "old": Side(4500, ["good"] * 4500, 0)}}, "predictions", "hold"),
        ({"sides": {"new": Side(500, ["good"] * 500, 60), "old": Side(4500, ["good"] * 4500, 0)}}, "inputs", "worse"),
        ({"sides": {"new": Side(50, ["good"] * 50, 0), "old": Side(4500, ["good"] * 4500, 0)}}, "traffic", "hold"),
    ],
    ids=["errors-up", "errors-too-few", "latency-up", "latency-missing", "prometheus-down", "accuracy-worse",
         "accuracy-unclear", "too-few-labels", "predictions-moved", "undecodable", "too-few-calls"],
)  # fmt: skip
def test_each_criterion_on_its_edge(overrides, criterion, result):
    judged = window(**overrides)
    assert results(judged)[criterion] == result, [e.text for e in judged.evidence]
    assert judged.verdict == ("worse" if result == "worse" else "hold")
    assert action_for(judged, 3) == ("abort" if result == "worse" else "hold")


def test_without_prometheus_or_labels_those_criteria_are_not_measured_and_do_not_hold_the_canary():
    judged = window(live=None, labels_expected=False, comparison=None)
    assert results(judged)["errors"] == results(judged)["latency"] == results(judged)["accuracy"] == "not_measured"
    assert judged.verdict == "healthy"


def test_healthy_windows_count_in_a_row_without_overlaps_and_a_hold_ends_the_row():
    def record(hours_before: int, verdict: str, canary: str = "new") -> dict:
        return {
            "canary": canary,
            "stable": "old",
            "verdict": verdict,
            "window_end": (END - timedelta(hours=hours_before)).isoformat(),
        }

    current = window()
    assert healthy_in_a_row([], current, 24) == 1
    history = [record(24, "healthy"), record(48, "healthy"), record(72, "hold"), record(96, "healthy")]
    assert healthy_in_a_row(history, current, 24) == 3
    # Hourly runs of a 24-hour window: the windows overlap, so they are one window of evidence, not 24.
    hourly = [record(h, "healthy") for h in range(1, 24)]
    assert healthy_in_a_row(hourly, current, 24) == 1
    assert healthy_in_a_row(hourly + [record(24, "healthy")], current, 24) == 2
    # Another canary's records, and a later record than this window, are not this row.
    assert healthy_in_a_row([record(24, "healthy", canary="other"), record(-5, "worse")], current, 24) == 1
    assert healthy_in_a_row([record(24, "worse")], current, 24) == 1  # an earlier worse window was aborted then
    current.healthy_windows = 3
    assert action_for(current, 3) == "promote" and action_for(current, 0) == "hold"


def test_only_fixed_queries_are_sent_and_names_are_checked_and_escaped():
    queries = queries_for("tabular-classifier", 24)
    assert queries["errors"] == (
        'sum by (version) (increase(gated_training_requests_total{model="tabular-classifier",outcome="error"}[24h]))'
    )
    for hostile in ('x"}) or vector(1', "UPPER", "a b", "x\n"):
        with pytest.raises(ValueError):
            queries_for(hostile, 24)
    assert promql_string('a"b\\c') == 'a\\"b\\\\c'


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"not json", "Expecting value"),
        (json.dumps({"status": "error", "error": "bad query"}).encode(), "status 'error'"),
        (answer([], "matrix"), "instant vector"),
        (answer([{"metric": {"version": "v"}, "value": [1, "-5"]}]), "not a count"),
        (answer([{"metric": {"version": "v"}, "value": [1, "+Inf"]}]), "not a count"),
        (answer([{"value": [1, "1"]}]), "no metric"),
    ],
)  # fmt: skip
def test_prometheus_answers_are_validated(answer, message):
    with pytest.raises(ValueError, match=message):
        _vector(answer)


def test_a_series_of_no_registry_version_is_ignored_and_nan_is_no_number():
    answer = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"version": "<script>"}, "value": [1, "9"]},
                {"metric": {}, "value": [1, "9"]},
                {"metric": {"version": "v1"}, "value": [1, "NaN"]},
                {"metric": {"version": "v2"}, "value": [1, "3"]},
            ],
        },
    }
    assert _vector(json.dumps(answer).encode()) == {"v2": 3.0}


def test_an_unreachable_or_misnamed_prometheus_is_named_never_raised():
    assert read_live("", "m", 24, END).error == "not measured: no prometheus_url"
    assert "not an http(s) URL" in read_live("file:///etc/passwd", "m", 24, END).error
    down = read_live("http://127.0.0.1:9", "tabular-classifier", 24, END, timeout=2)
    assert down.error.startswith("Prometheus 127.0.0.1: requests not read") and down.requests == {}

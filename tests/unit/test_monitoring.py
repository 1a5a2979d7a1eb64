"""Monitoring's parts in process: labels read without trusting them and joined as documented, realized and estimated
accuracy with their rules, the window's decision, the retrain tickets that keep retrains one at a time, and the
calls read back from the log and decoded."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gated_training.config import MonitoringSettings
from gated_training.errors import ConfigError, DataError
from gated_training.monitoring import (
    Finding,
    decide,
    estimated,
    join_labels,
    may_retrain,
    open_ticket,
    read_labels,
    read_tickets,
    realized,
    render_html,
    render_markdown,
)
from gated_training.predictionlog import decode_calls, read_window
from gated_training.reports import check_ticket, close_ticket
from tests.kfp_markdown import kfp_elements
from tests.markdown_render import elements
from tests.prediction_traffic import log_calls, v2_bodies

END = datetime(2026, 12, 4, 18, tzinfo=timezone.utc)
SETTINGS = MonitoringSettings()


# -- labels -------------------------------------------------------------------------------------------------------


def test_label_tables_are_read_and_what_is_left_out_is_counted(tmp_path):
    (tmp_path / "a.csv").write_text(
        "request_id,label,event_time\n"
        "c1,good,2026-12-04T10:00:00Z\n"
        "c2,,2026-12-04T10:00:00Z\n"  # no label: incomplete
        "c3,bad,not a time\n"  # incomplete
        "c4,bad,2026-12-04T10:00:00\n"  # no zone: read as UTC, counted
        "c5,good,2026-12-05T10:00:00Z\n"  # after the window's end
    )
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "ignored.txt").write_text("not a table")
    labels = read_labels(str(tmp_path), END)
    assert labels.counts == {
        "files": 2,
        "unreadable_files": 1,
        "rows": 5,
        "incomplete": 2,
        "naive_times": 1,
        "after_end": 1,
    }
    assert sorted(labels.table["request_id"]) == ["c1", "c4"]
    assert "broken.parquet: skipped" in labels.problems[0]


def test_a_label_table_without_the_key_columns_is_skipped_naming_them(tmp_path):
    (tmp_path / "l.csv").write_text("id,label\nc1,good\n")
    labels = read_labels(str(tmp_path), END)
    assert labels.counts["unreadable_files"] == 1 and labels.table.empty
    assert "no column(s) request_id, event_time" in labels.problems[0]


def _rows(ids: list[str], when: datetime = END - timedelta(hours=2)) -> pd.DataFrame:
    return pd.DataFrame(
        {"key": ids, "row": [0] * len(ids), "request_time": pd.to_datetime([when] * len(ids), utc=True)}
    )


def _labels(items: list[tuple[str, str, datetime]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": [i[0] for i in items],
            "row": [0] * len(items),
            "label": [i[1] for i in items],
            "event_time": pd.to_datetime([i[2] for i in items], utc=True),
        }
    )


def test_labels_join_on_the_call_id_and_every_exclusion_is_counted():
    call = END - timedelta(hours=2)
    later = call + timedelta(hours=1)
    labels = _labels(
        [
            ("a", "1", later),
            ("a", "1", later),  # the same label twice: one kept
            ("b", "1", later),
            ("b", "0", later),  # disagreeing: both left out
            ("c", "7", later),  # a class the model does not know
            ("d", "0", call - timedelta(hours=1)),  # known before its call: clock skew or a reused id
            ("e", "0", call + timedelta(minutes=2) - timedelta(minutes=4)),  # 2 min early: within the skew allowed
            ("f", "1", call + timedelta(hours=100)),  # later than the delay
            ("zz", "1", later),  # no such call
        ]
    )
    joined = join_labels(_rows(["a", "b", "c", "d", "e", "f"], call), labels, [0, 1], timedelta(hours=72))
    assert joined.counts == {
        "duplicates": 1,
        "conflicting": 1,
        "other_calls": 1,
        "unseen_class": 1,
        "before_call": 1,
        "late": 1,
    }
    assert sorted(zip(joined.positions, joined.labels)) == [(0, 1), (4, 0)]


# -- realized and estimated ----------------------------------------------------------------------------------------


def test_a_drop_acts_only_when_it_is_larger_than_the_allowance_and_significant():
    truth = np.array([1] * 500 + [0] * 500)
    worse = truth.copy()
    worse[:300] = 1 - worse[:300]  # accuracy 0.70
    assert realized(truth, worse, 2, 0.85, 300, SETTINGS).verdict == "drop"
    slightly = truth.copy()
    slightly[:170] = 1 - slightly[:170]  # 0.83: within max_accuracy_drop 0.05
    assert realized(truth, slightly, 2, 0.85, 300, SETTINGS).verdict == "ok"
    few = np.array([1] * 150)
    guessed = few.copy()
    guessed[:33] = 0  # 0.78 on 150 calls against 0.85 on 40 test rows: a drop of 0.07 the data cannot confirm
    small = realized(few, guessed, 2, 0.85, 40, SETTINGS)
    assert small.verdict == "drop_within_noise" and small.difference_low < 0 < small.difference_high
    assert realized(truth[:50], worse[:50], 2, 0.85, 300, SETTINGS).verdict == "too_few"
    result = realized(truth, worse, 2, 0.85, 300, SETTINGS)
    assert (
        result.rows == 1000
        and result.low < 0.70 < result.high
        and "Newcombe, 1000 labelled calls vs 300" in result.rule
    )


@pytest.mark.parametrize(
    "calibration, trusted, why",
    [
        (None, False, "recorded no calibration"),
        ({"expected_calibration_error": 0.12, "rows": 1000}, False, "0.120 > 0.05"),
        ({"expected_calibration_error": 0.01, "rows": 50}, False, "50 test rows < 200"),
        ({"expected_calibration_error": 0.01, "rows": 1000}, True, "calibrated at gate time"),
    ],
)
def test_the_estimate_is_trusted_only_when_the_gate_measured_calibrated_probabilities(calibration, trusted, why):
    confidence = np.full(500, 0.9)
    estimate = estimated(confidence, calibration, 0.9, SETTINGS)
    assert estimate.trusted is trusted and why in estimate.why
    assert estimate.verdict == ("ok" if trusted else "not_trusted")
    low = estimated(np.full(500, 0.6), calibration, 0.9, SETTINGS)
    assert low.verdict == ("drop" if trusted else "not_trusted")


# -- the window's decision ----------------------------------------------------------------------------------------


def test_no_traffic_and_no_labels_yet_are_outcomes():
    assert decide([], 0, True, 0)[0] == "no_traffic"
    outcome, reasons, _ = decide([], 10, True, 0)
    assert outcome == "no_labels_yet" and "no label has joined" in reasons[0]
    assert decide([], 10, False, 0)[0] == "ok"


def test_the_strongest_finding_decides_and_broken_inputs_never_retrain():
    drift = Finding("retrain", "drift", "drifted", "v1")
    assert decide([drift, Finding("warn", "coverage", "few labels", "v1")], 10, False, 0)[:2] == (
        "retrain",
        ["drifted"],
    )
    outcome, reasons, _ = decide([drift, Finding("alert", "contract", "nulls", "v1")], 10, False, 0)
    assert outcome == "alert" and "no retrain: the calls broke the contract" in reasons[0]
    assert decide([Finding("warn", "coverage", "few labels")], 10, False, 0)[:2] == ("warn", ["few labels"])


def test_reports_escape_everything_from_the_log_and_the_labels():
    hostile = "<img src=x onerror=alert(1)>|**bold**"
    result = {
        "outcome": "alert",
        "reasons": [hostile],
        "warnings": [hostile],
        "model_name": "m",
        "service": "m",
        "window_start": "s",
        "window_end": "e",
        "champion": hostile,
        "versions": [{"version": hostile, "role": "unknown", "calls": 1, "notes": [hostile]}],
        "findings": [{"level": "alert", "code": "version", "version": hostile, "text": hostile}],
        "log": {"counts": {hostile: 1}, "problems": [hostile]},
        "labels": {},
        "retrain": {"text": hostile},
        "comparison": None,
    }
    page = render_html(result)
    assert "<img" not in page and "&lt;img" in page
    markdown = render_markdown(result)
    for parsed in (elements(markdown), kfp_elements(markdown)):  # a permissive renderer, and the KFP UI's own
        assert {tag for tag, _ in parsed.tags} <= {
            "h2",
            "p",
            "strong",
            "ul",
            "li",
            "code",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
            "div",
            "span",
            "br",
            "em",
        }
        assert "<img src=x onerror=alert(1)>|**bold**" in "".join(parsed.text)  # shown as text, whole


# -- retrain tickets -----------------------------------------------------------------------------------------------


def _ticket(tmp_path: Path, created: datetime, outcome: dict | None = None) -> str:
    uri = open_ticket(str(tmp_path), "svc", created, {"why": ["test"]})
    if outcome is not None:
        (Path(uri) / "outcome.json").write_text(json.dumps(outcome))
    return uri


def test_a_pending_retrain_holds_the_next_one(tmp_path):
    _ticket(tmp_path, END - timedelta(hours=2))
    tickets, problems = read_tickets(str(tmp_path), "svc")
    allowed, why = may_retrain(tickets, END, 72, 24)
    assert not allowed and "a retrain is pending since" in why and not problems


def test_a_lost_retrain_holds_nothing_and_is_named(tmp_path):
    _ticket(tmp_path, END - timedelta(hours=30))
    allowed, why = may_retrain(read_tickets(str(tmp_path), "svc")[0], END, 72, 24)
    assert allowed and "no outcome after 24 h (lost" in why


def test_a_retrain_that_deployed_nothing_is_not_retried_before_its_cooldown(tmp_path):
    ended = END - timedelta(hours=5)
    _ticket(
        tmp_path,
        END - timedelta(hours=6),
        {"outcome": "blocked", "blocked_by": "model", "reasons": ["min_accuracy failed"], "ended": ended.isoformat()},
    )
    allowed, why = may_retrain(read_tickets(str(tmp_path), "svc")[0], END, 72, 24)
    assert not allowed and "ended blocked by model (min_accuracy failed)" in why and "not retried before" in why
    assert may_retrain(read_tickets(str(tmp_path), "svc")[0], END + timedelta(hours=68), 72, 24)[0]


def test_a_deployed_retrain_allows_the_next_one(tmp_path):
    _ticket(tmp_path, END - timedelta(hours=3), {"outcome": "deployed", "ended": END.isoformat()})
    assert may_retrain(read_tickets(str(tmp_path), "svc")[0], END, 72, 24) == (True, "")


def test_an_unreadable_ticket_is_named_and_ignored(tmp_path):
    uri = _ticket(tmp_path, END - timedelta(hours=1))
    (Path(uri) / "ticket.json").write_text("{not json")
    tickets, problems = read_tickets(str(tmp_path), "svc")
    assert tickets == [] and "unreadable, ignored" in problems[0]


def test_a_ticket_is_closed_once_and_only_a_monitoring_ticket_is_accepted(tmp_path):
    uri = _ticket(tmp_path, END)
    assert check_ticket(uri + "/") == uri
    close_ticket(uri, {"outcome": "deployed"})
    close_ticket(uri, {"outcome": "failed"})  # a second writer finds it there and leaves it
    assert json.loads((Path(uri) / "outcome.json").read_text())["outcome"] == "deployed"
    for bad in ("/tmp/anything", f"{uri}/../../x", "gs://b/retrain/2026-x"):
        with pytest.raises(ConfigError, match="not a ticket of the monitoring pipeline"):
            check_ticket(bad)


# -- the log read back and decoded ----------------------------------------------------------------------------------


class Model:
    def predict(self, frame):
        return np.where(frame["x"].to_numpy() > 0, "yes", "no")

    def predict_proba(self, frame):
        p = (frame["x"].to_numpy() > 0).astype(float) * 0.8 + 0.1
        return np.column_stack([1 - p, p])


def test_the_window_reads_each_call_once_and_decodes_its_rows(tmp_path):
    log = tmp_path / "log"
    frame = pd.DataFrame({"x": [1.0, -1.0, 2.0], "city": ["a", None, "c"]})
    ids = log_calls(log, "svc", "v1", frame, Model(), END - timedelta(hours=1))
    log_calls(log, "svc", "v1", frame.iloc[:1], Model(), END - timedelta(hours=1), ids=ids[:1])  # a replay
    window = read_window(str(log), "svc", END - timedelta(hours=2), END, 1000)
    assert len(window.calls) == 3 and window.counts["duplicate_ids"] == 1 and window.versions == ["v1"]
    decoded = decode_calls(window.calls, ["x", "city"], ["no", "yes"])
    assert decoded.features["x"].tolist() == [1.0, -1.0, 2.0] and decoded.features["city"].isna().sum() == 1
    assert decoded.rows["predicted"].tolist() == ["yes", "no", "yes"] and decoded.probabilities.shape == (3, 2)
    assert read_window(str(log), "svc", END - timedelta(minutes=30), END, 1000).calls.empty
    with pytest.raises(DataError, match="more than 2 calls in the window"):
        read_window(str(log), "svc", END - timedelta(hours=2), END, 2)


def test_temp_files_a_killed_sink_left_are_not_read(tmp_path):
    """A SIGKILL inside a local write leaves a hidden ``.name.*.tmp``; the window never reads one."""
    log = tmp_path / "log"
    frame = pd.DataFrame({"x": [1.0, -1.0, 2.0], "city": ["a", None, "c"]})
    log_calls(log, "svc", "v1", frame, Model(), END - timedelta(hours=1))
    hour = next(log.glob("model=*/version=*/hour=*")).name  # the window's hour; its sink stats beside
    (log / "sink" / hour).mkdir(parents=True, exist_ok=True)
    (log / "sink" / hour / "sink-a.json").write_text(json.dumps({"counters": {"received": 6}}))
    before = read_window(str(log), "svc", END - timedelta(hours=2), END, 1000)
    assert before.sink == {"received": 6}
    folders = [path for path in log.rglob("*") if path.is_dir()]
    for folder in folders:
        (folder / ".part-0001.parquet.x1y2.tmp").write_bytes(b"PAR1 half")
        (folder / ".sink-a.json.x1y2.tmp").write_bytes(b'{"counters": {"received": 10')
    after = read_window(str(log), "svc", END - timedelta(hours=2), END, 1000)
    assert after.problems == before.problems == []
    assert after.counts == before.counts and after.sink == before.sink
    pd.testing.assert_frame_equal(after.calls, before.calls)


def test_calls_that_cannot_be_decoded_are_counted_not_fatal():
    request, response = v2_bodies(pd.DataFrame({"x": [1.0]}), ["yes"], np.array([[0.2, 0.8]]), "svc", "v1")
    calls = pd.DataFrame(
        {
            "id": ["ok", "notjson", "nooutputs", "badproba", "missing", "v1call"],
            "request": [request, b"{", request, request, json.dumps({"inputs": [{"name": "y", "shape": [1, 1],
                        "datatype": "FP64", "data": [3.0]}]}).encode(),
                        json.dumps({"instances": [{"x": 2.0}]}).encode()],
            "response": [response, response, b'{"outputs": []}',
                         response.replace(b"0.8", b"1.8"), response,
                         json.dumps({"predictions": ["yes"], "probabilities": [[0.1, 0.9]]}).encode()],
            "metadata": ["{}"] * 6,
            "version": ["v1"] * 6,
            "endpoint": ["default"] * 6,
            "request_time": [END.isoformat()] * 6,
        }
    )  # fmt: skip
    decoded = decode_calls(calls, ["x"], ["no", "yes"])
    assert decoded.rows["id"].tolist() == ["ok", "missing", "v1call"]
    assert decoded.problems == {
        "undecodable_body": 1,
        "undecodable_response": 2,
        "unexpected_inputs": 1,
        "missing_inputs": 1,
    }


def test_labels_can_be_keyed_by_a_metadata_header():
    request, response = v2_bodies(pd.DataFrame({"x": [1.0]}), ["yes"], np.array([[0.2, 0.8]]), "svc", "v1")
    calls = pd.DataFrame(
        {
            "id": ["uuid-1"],
            "request": [request],
            "response": [response],
            "metadata": [json.dumps({"X-Order-Id": ["order-9"]})],
            "version": ["v1"],
            "endpoint": ["default"],
            "request_time": [END.isoformat()],
        }
    )
    assert decode_calls(calls, ["x"], ["no", "yes"], "X-Order-Id").rows["key"].tolist() == ["order-9"]

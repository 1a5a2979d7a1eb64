"""The monitoring loop's inputs, hostile: the event corpus (tests/bad_inputs/prediction_log/events.jsonl) posted to a
real sink process between honest calls, and the label corpus (tests/bad_inputs/labels/), each through the monitoring
step on the sample's champion. Each case asserts the answer or the outcome, the message, what was counted or lost,
that no markup reaches a report raw, and that the registry is byte-identical."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from gated_training import logs
from gated_training.config import DriftPolicy, MonitoringRunSettings, MonitoringSettings
from gated_training.predictionlog.events import format_time
from gated_training.registry import ModelRegistry, ensure_local_key
from gated_training.steps.monitor_window import monitor_window
from tests.conftest import REPO_ROOT, SAMPLE_DATA
from tests.integration.conftest import copy_setup
from tests.kfp_markdown import kfp_elements
from tests.prediction_traffic import call_events, log_calls
from tests.registry_helpers import registry_bytes
from tests.sink_process import sink_process

CORPUS = REPO_ROOT / "tests" / "bad_inputs"
MODEL = "tabular-classifier"
END = datetime(2026, 12, 4, 18, tzinfo=timezone.utc)
CALLS_START = END - timedelta(hours=20)  # call-0000 is made then, one call a minute after it
MARKUP = ("<script", "<img", "<b>")
SAFE_TAGS = {"h2", "p", "strong", "ul", "li", "code", "table", "thead", "tbody", "tr", "th", "td", "div", "span", "br"}


@pytest.fixture(scope="module")
def served(sample_champion, tmp_path_factory):
    ensure_local_key()
    setup = copy_setup(sample_champion, tmp_path_factory.mktemp("monitoring") / "setup")
    registry = ModelRegistry(str(setup.registry), MODEL)
    champion = registry.champion()
    model, _ = registry.load_verified(champion.version)
    frame = pd.read_csv(SAMPLE_DATA).drop(columns=["risk"]).head(150)
    return setup, champion, model, frame


def post(port: int, headers: dict[str, str], body: bytes) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/", body=body, headers=headers)
    answer = connection.getresponse()
    return answer.status, answer.read().decode()


def monitor(setup, log: Path, labels: Path | None, out: Path, end: datetime = END):
    out.mkdir(parents=True, exist_ok=True)
    run = MonitoringRunSettings(
        prediction_log_uri=str(log),
        labels_uri=str(labels) if labels else "",
        registry_uri=str(setup.registry),
        model_name=MODEL,
        mlflow_tracking_uri=setup.tracking_uri,
    )
    outcome, retrain = monitor_window(
        run=run,
        settings=MonitoringSettings(label_delay_hours=24),
        policy=DriftPolicy(),
        end=end,
        result_out=str(out / "r.json"),
        markdown_out=str(out / "r.md"),
        html_out=str(out / "r.html"),
    )
    return (
        outcome,
        retrain,
        json.loads((out / "r.json").read_text()),
        (out / "r.md").read_text(),
        (out / "r.html").read_text(),
    )


def assert_escaped(markdown: str, page: str) -> None:
    assert not any(tag in page for tag in MARKUP), [t for t in MARKUP if t in page]
    assert {tag for tag, _ in kfp_elements(markdown).tags} <= SAFE_TAGS


def test_hostile_events_are_answered_counted_kept_aside_and_never_reach_a_report_raw(served, tmp_path, monkeypatch):
    setup, champion, model, frame = served
    before = registry_bytes(setup.registry)
    cases = [json.loads(line) for line in (CORPUS / "prediction_log" / "events.jsonl").read_text().splitlines()]
    # The sink counts per hour it received in (now): this window ends now, and the corpus's times are set inside it.
    end = datetime.now(timezone.utc) + timedelta(minutes=1)
    moment = format_time(end - timedelta(hours=1))
    ids, honest = call_events(
        MODEL, champion.version, frame, model, end - timedelta(hours=20), spacing=timedelta(minutes=1), ids=None
    )
    log = tmp_path / "log"
    monkeypatch.setenv(logs.FORMAT_ENV, "json")  # as in the image: the sink's log is JSON lines, hostile or not
    with sink_process(tmp_path, str(log), "--pair-timeout-seconds", "600", "--max-event-bytes", "1048576") as sink:
        for headers, body in honest[:100]:
            assert post(sink.port, headers, body)[0] == 200
        for case in cases:
            headers = {
                k: v.replace("{champion}", champion.version).replace("{time}", moment)
                for k, v in case["headers"].items()
            }
            status, answer = post(sink.port, headers, case["body"].replace("{champion}", champion.version).encode())
            assert (status, case["answer"] in answer) == (case["status"], True), (case["case"], status, answer)
        status, answer = post(sink.port, honest[0][0], b"x" * (2 * 1024 * 1024))  # huge
        assert status == 413 and "above the sink's limit of 1048576" in answer
        for headers, body in honest[100:]:
            assert post(sink.port, headers, body)[0] == 200
        stats = sink.stats()
        assert sink.stop(signal.SIGTERM) == 0  # everything acknowledged is written
    sink_log = [json.loads(line) for line in sink.log_path.read_text().splitlines() if line.strip()]
    assert {"sink.started", "sink.wrote", "sink.stopped"} <= {r["event"] for r in sink_log}, sink_log
    monkeypatch.delenv(logs.FORMAT_ENV)
    counters = stats["counters"] if "counters" in stats else stats
    assert counters["malformed"] == sum(c["status"] == 400 for c in cases)
    assert counters["oversized"] == 1 and counters["duplicates"] == 2
    written = pd.concat(pd.read_parquet(p) for p in log.glob("model=*/version=*/hour=*/*.parquet"))
    assert set(ids) <= set(written["id"]) and written["id"].is_unique
    aside = pd.concat(pd.read_parquet(p) for p in log.glob("model=*/aside/hour=*/*.parquet"))
    assert {"malformed", "oversized"} <= set(aside["reason"])
    assert {"lonely-request", "lonely-response"} <= set(aside["id"].dropna())

    outcome, retrain, record, markdown, page = monitor(setup, log, None, tmp_path / "out", end)
    assert outcome.outcome == "alert" and retrain.ticket == ""
    assert any("20990101T000000000000Z-ffffffff" in r and "does not hold" in r for r in outcome.reasons)
    (view,) = [v for v in record["versions"] if v["role"] == "champion"]
    assert view["calls"] == 150 + 3  # the honest calls, nj-1, pair-1 and the markup call; never the replay
    assert view["decode_problems"] == {"undecodable_body": 1}
    assert any("could not be decoded" in w for w in outcome.warnings)
    assert any("the sink could not keep every event" in w and "1 oversized" in w for w in outcome.warnings)
    assert_escaped(markdown, page)
    assert registry_bytes(setup.registry) == before


LABEL_CASES = [  # file, outcome, where the count is, count, text in the warnings (or problems)
    ("unknown_ids.csv", "no_labels_yet", ("join", "other_calls"), 3, None),
    ("conflicting.csv", "warn", ("join", "conflicting"), 1, "labelled twice with different classes"),
    ("unseen_class.csv", "warn", ("join", "unseen_class"), 2, "of a class the model does not know"),
    ("clock_skew.csv", "warn", ("join", "before_call"), 1, "known before their call"),
    ("markup.csv", "warn", ("join", "unseen_class"), 1, "of a class the model does not know"),
    ("naive_times.csv", "ok", ("counts", "naive_times"), 10, None),
    ("not_a_table.parquet", "no_labels_yet", ("counts", "unreadable_files"), 1, "not_a_table.parquet: skipped"),
    (
        "wrong_columns.csv",
        "no_labels_yet",
        ("counts", "unreadable_files"),
        1,
        "no column(s) request_id, label, event_time",
    ),
]


@pytest.fixture(scope="module")
def honest_log(served, tmp_path_factory):
    setup, champion, model, frame = served
    log = tmp_path_factory.mktemp("honest") / "log"
    ids = [f"call-{i:04d}" for i in range(len(frame))]
    log_calls(log, MODEL, champion.version, frame, model, CALLS_START, spacing=timedelta(minutes=1), ids=ids)
    return log


@pytest.mark.parametrize(("name", "outcome", "where", "count", "text"), LABEL_CASES, ids=[c[0] for c in LABEL_CASES])
def test_hostile_label_tables_are_counted_and_named_never_trusted(
    served, honest_log, tmp_path, name, outcome, where, count, text
):
    setup, *_ = served
    before = registry_bytes(setup.registry)
    labels = tmp_path / "labels"
    labels.mkdir()
    shutil.copyfile(CORPUS / "labels" / name, labels / name)
    result, retrain, record, markdown, page = monitor(setup, honest_log, labels, tmp_path / "out")
    assert result.outcome == outcome, (result.reasons, result.warnings)
    assert record["labels"][where[0]][where[1]] == count, record["labels"]
    if text:
        said = result.warnings + record["labels"]["problems"]
        assert any(text in line for line in said), said
    assert retrain.ticket == ""
    assert_escaped(markdown, page)
    assert registry_bytes(setup.registry) == before

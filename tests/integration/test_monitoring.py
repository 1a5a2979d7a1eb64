"""The monitoring step on the sample's champion: windows of logged calls (as the sink writes them) and late labels,
each outcome with its reasons, the retrain ticket and batch, MLflow and the webhook, and the registry untouched.

The loop test (test_monitoring_loop.py) runs the same through the real servers and the compiled YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gated_training.registry import SUITE_FILE
from tests.conftest import SAMPLE_DATA
from tests.integration.conftest import LocalSetup
from tests.prediction_traffic import END, MODEL, Served, flipped
from tests.webhook_receiver import WebhookReceiver


@pytest.fixture
def served(champion_copy, tmp_path) -> Served:
    return Served(champion_copy, tmp_path)


def test_a_window_like_the_training_data_is_ok_and_each_version_is_logged_to_mlflow(served):
    ids, truth = served.traffic(300)
    served.label(ids, truth)
    outcome, retrain, record, metrics = served.monitor()
    assert outcome.outcome == "ok", record["findings"]
    (view,) = record["versions"]
    assert view["role"] == "champion" and view["calls"] == 300 and view["realized"]["rows"] == 300
    assert view["contract"]["checks"] > 0 and not view["contract"]["failed_critical"]
    assert retrain.ticket == "" and metrics["calls"] == 300 and 0.5 < metrics["realized_accuracy"] <= 1
    assert record["mlflow"] == {served.champion.version: "synced"} and record["notification"] == "not needed"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(served.setup.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gated-training-monitoring").experiment_id])
    assert run.data.tags["registry_version"] == served.champion.version
    assert run.data.tags["gated_training.monitoring_outcome"] == "ok" and run.data.metrics["calls"] == 300
    assert served.registry_unchanged()


def test_drift_and_an_accuracy_drop_open_one_retrain_and_the_next_window_is_held(served):
    ids, truth = served.traffic(1100, age=lambda a: a + 15)
    served.label(ids, flipped(truth, 0.4))
    with WebhookReceiver() as receiver:
        outcome, retrain, record, _ = served.monitor(hook=receiver.hook_url)
        assert len(receiver.posts) == 1 and "RETRAIN" in receiver.posts[0]["json"]["text"]
    assert outcome.outcome == "retrain", record["findings"]
    assert any("drifted" in r and "age" in r for r in outcome.reasons)
    assert any(r.startswith(f"version {served.champion.version}: realized accuracy") for r in outcome.reasons)
    batch = pd.read_parquet(retrain.data_uri)
    assert len(batch) == 1100 and retrain.target_column == "risk" and set(batch["risk"]) <= {0, 1}
    champion_suite = Path(served.registry.version_uri(served.champion.version), SUITE_FILE).read_bytes()
    assert Path(retrain.suite_uri).read_bytes() == champion_suite
    ticket = json.loads(Path(retrain.ticket, "ticket.json").read_text())
    assert ticket["champion"] == served.champion.version and ticket["monitoring_run"] == "run-1"
    again, second, record, _ = served.monitor()
    assert again.outcome == "alert" and second.ticket == ""
    assert "no retrain: a retrain is pending since" in again.reasons[-1]
    assert len(list((served.log / f"model={MODEL}" / "retrain").iterdir())) == 1
    assert served.registry_unchanged()


def test_a_retrain_without_enough_labelled_calls_is_reported_and_not_retried(served):
    served.traffic(300, age=lambda a: a + 15)
    outcome, retrain, record, _ = served.monitor(labels=False)
    assert outcome.outcome == "alert" and retrain.ticket == ""
    assert "no retrain: 0 labelled calls < min_labelled_rows 100" in outcome.reasons[-1]
    again, _, _, _ = served.monitor(labels=False)
    assert (
        again.outcome == "alert" and "ended failed" in again.reasons[-1] and "not retried before" in again.reasons[-1]
    )
    assert served.registry_unchanged()


def test_calls_that_break_the_contract_alert_and_never_retrain_on_them(served):
    ids, truth = served.traffic(300, age=lambda a: -a, credit_amount=lambda c: c.where(c > 3000))
    served.label(ids, flipped(truth, 0.5))
    outcome, retrain, record, _ = served.monitor()
    assert outcome.outcome == "alert" and retrain.ticket == ""
    (view,) = record["versions"]
    assert any("expect_column_values_to_be_between on column 'age'" in f for f in view["contract"]["failed_critical"])
    assert any("no retrain: the calls broke the contract" in r for r in outcome.reasons)
    assert served.registry_unchanged()


def test_calls_answered_by_a_version_the_registry_does_not_know_alert_and_are_not_analysed(served):
    served.traffic(150, version="20260101T000000000000Z-deadbeef")
    outcome, _, record, _ = served.monitor(labels=False)
    assert (
        outcome.outcome == "alert" and "which registry" in outcome.reasons[0] and "does not hold" in outcome.reasons[0]
    )
    assert record["versions"][0]["role"] == "unknown"
    assert served.registry_unchanged()


def test_no_traffic_and_no_labels_yet_are_outcomes_not_failures(served):
    outcome, *_ = served.monitor()
    assert outcome.outcome == "no_traffic" and outcome.reasons == ["no call was logged in the window"]
    served.traffic(150)
    outcome, *_ = served.monitor()
    assert outcome.outcome == "no_labels_yet"
    assert served.registry_unchanged()


def test_a_registry_without_a_champion_is_no_traffic_naming_it(served, tmp_path):
    served.setup = LocalSetup(tmp_path / "empty")
    outcome, *_ = served.monitor()
    assert outcome.outcome == "no_traffic" and "has no champion" in outcome.reasons[0]


def test_label_coverage_is_measured_on_calls_old_enough_to_be_labelled(served):
    ids, truth = served.traffic(400, hours_before_end=60)
    served.label(ids[:100], truth[:100])
    outcome, _, record, _ = served.monitor(performance_window_hours=72, window_hours=72)
    (view,) = record["versions"]
    assert view["label_coverage"] is not None and view["label_coverage"] < 0.5
    assert outcome.outcome == "warn" and any("have a label" in w for w in outcome.warnings)


def test_the_compiled_monitoring_yaml_runs_through_kfp_local_and_every_launcher_reads_its_outputs(served, capsys):
    """`gated-training monitor` on the YAML users upload; the step's executor output parses under each backend's
    strict protojson (no NaN: a window without labels has no realized accuracy, and no metric says NaN)."""
    import re

    from gated_training.cli import main
    from tests.conformance.backends import RELEASES, parse_executor_output

    served.traffic(200)
    workdir = served.root / "monitor"
    code = main(
        ["monitor", "--log-uri", str(served.log), "--registry", str(served.setup.registry),
         "--tracking-uri", served.setup.tracking_uri, "--workdir", str(workdir), "--window-end", END.isoformat()]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "=== monitoring: OK ===" in printed, printed
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["outcome"] == "ok" and summary["tasks_ran"] == ["monitor-window"] and summary["retrain_run"] is None
    assert Path(summary["reports"]["monitor-window/report"]).read_text().startswith("## Monitoring: OK")
    (output,) = workdir.glob("kfp-runs/*/monitor-window/executor_output.json")
    text = output.read_text()
    assert "null" not in re.sub(r'"[^"]*"', '""', text) and "NaN" not in text
    for release in RELEASES:
        parse_executor_output(release, text)
    assert served.registry_unchanged()


def test_monitor_refuses_bad_parameters_before_anything_runs(served, capsys):
    from gated_training.cli import main

    for argv, message in (
        (["--window-end", "2026-12-04T18:00:00"], "give the zone"),
        (["--set", "monitoring.window_hours=0"], "window_hours"),
        (["--set", "monitoring.on_drift=deploy"], "on_drift"),
        (["--set", "monitoring.label_key_header=X Bad"], "label_key_header"),
        (["--registry", "/tmp/../etc"], "registry"),
    ):
        assert main(["monitor", "--workdir", str(served.root / "w"), *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (served.root / "w" / "kfp-runs").exists()


def test_a_retrain_can_train_on_the_users_own_table_instead_of_the_logged_calls(served):
    """retrain_data_uri names the training table: no batch is written, the nested run reads that table with the
    suite beside it (the training pipeline's default), and the ticket still keeps retrains one at a time."""
    served.traffic(300, age=lambda a: a + 15)
    outcome, retrain, record, _ = served.monitor(labels=False, retrain_data_uri=str(SAMPLE_DATA))
    assert outcome.outcome == "retrain" and retrain.data_uri == str(SAMPLE_DATA)
    assert retrain.suite_uri == "" and retrain.target_column == "risk"
    assert sorted(p.name for p in Path(retrain.ticket).iterdir()) == ["ticket.json"]
    assert record["retrain"]["started"] and "retrain_data_uri" in record["retrain"]["text"]
    again, second, _, _ = served.monitor(labels=False, retrain_data_uri=str(SAMPLE_DATA))
    assert again.outcome == "alert" and second.ticket == "" and "pending" in again.reasons[-1]
    assert served.registry_unchanged()


def test_the_gates_metrics_are_measured_on_the_labelled_calls_beside_the_deployed_ones(served):
    ids, truth = served.traffic(300)
    served.label(ids, truth)
    _, _, record, _ = served.monitor()
    realized = record["versions"][0]["realized"]
    assert set(realized["metrics"]) >= {"accuracy", "balanced_accuracy", "f1", "roc_auc", "brier"}
    assert realized["metrics"]["accuracy"] == pytest.approx(realized["accuracy"])
    assert realized["gate_metrics"]["accuracy"] == realized["gate_accuracy"]
    report = (served.root / "out-0" / "r.md").read_text()
    assert "**The gate's metrics on the labelled calls**" in report and "roc auc" in report and "(gate " in report

from gated_training.summary import build_summary, summary_markdown

VALIDATION_OK = {
    "passed": True, "blocking_reasons": [], "quality_score": 1.0, "min_quality_score": 0.8, "data_sha256": "ab",
    "checks": [{"rule": "expect_column_to_exist", "column": "a", "severity": "critical", "passed": True,
                "observed": None, "expected": {"column": "a"}}],
}
GATE = {
    "decision": "block", "reasons": ["min_accuracy: 0.7000 >= 0.8500 → FAIL"],
    "checks": [{"name": "min_accuracy", "value": 0.7, "threshold": 0.85, "comparison": ">=", "passed": False, "detail": ""}],
    "candidate": {"metrics": {"accuracy": 0.7}, "mlflow_run_id": "r1"},
    "champion": {"version": "v1", "metrics": {"accuracy": 0.8}, "pointer_token": "t"},
}


def test_blocked_by_data():
    validation = {**VALIDATION_OK, "passed": False, "blocking_reasons": ["critical rule x on column 'a' failed"]}
    summary = build_summary(validation=validation, kfp_run_id="k")
    assert (summary["outcome"], summary["blocked_by"]) == ("blocked", "data")
    assert summary["reasons"] == ["critical rule x on column 'a' failed"]
    assert summary["deployed"] is None and summary["champion"] is None and summary["candidate_metrics"] is None
    assert [c["gate"] for c in summary["checks"]] == ["data", "data"]
    assert "# Blocked by the data gate" in summary_markdown(summary)


def test_blocked_by_model_lists_checks_with_values_and_thresholds():
    summary = build_summary(validation=VALIDATION_OK, gate=GATE)
    assert (summary["outcome"], summary["blocked_by"]) == ("blocked", "model")
    model_check = summary["checks"][-1]
    assert (model_check["name"], model_check["value"], model_check["threshold"], model_check["passed"]) == (
        "min_accuracy", 0.7, 0.85, False)
    assert summary["champion"] == {"version": "v1", "metrics": {"accuracy": 0.8}}
    assert summary["mlflow_run_id"] == "r1"
    markdown = summary_markdown(summary)
    assert "min_accuracy" in markdown and "Champion compared against: `v1`" in markdown


def test_deployed_and_champion_changed():
    gate = {**GATE, "decision": "deploy", "reasons": []}
    deployment = {"promoted": True, "version": "v2", "version_uri": "/r/m/versions/v2", "blocked_reason": None,
                  "mlflow_model_version": "3", "mlflow_mirror": "synced"}
    summary = build_summary(validation=VALIDATION_OK, gate=gate, deployment=deployment)
    assert summary["outcome"] == "deployed" and summary["deployed"]["version"] == "v2" and summary["blocked_by"] is None
    lost = build_summary(validation=VALIDATION_OK, gate=gate,
                         deployment={**deployment, "promoted": False, "blocked_reason": "champion_changed: moved"})
    assert (lost["outcome"], lost["blocked_by"], lost["deployed"]) == ("blocked", "champion_changed", None)
    assert lost["reasons"] == ["champion_changed: moved"]


def test_failed_names_the_step_and_cause():
    summary = build_summary(validation=None, error="DataError: x.csv: no such file", failed_step="validate-data")
    assert summary["outcome"] == "failed" and summary["reasons"] == ["validate-data failed: DataError: x.csv: no such file"]
    assert "# Failed" in summary_markdown(summary)

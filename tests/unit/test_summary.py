from gated_training.reports.summary import build_summary, summary_markdown
from tests.markdown_render import tables, tag_names, visible_text

VALIDATION_OK = {
    "passed": True,
    "blocking_reasons": [],
    "quality_score": 1.0,
    "min_quality_score": 0.8,
    "data_sha256": "ab",
    "checks": [
        {
            "rule": "expect_column_to_exist",
            "column": "a",
            "severity": "critical",
            "passed": True,
            "observed": None,
            "expected": {"column": "a"},
        }
    ],
}
GATE = {
    "decision": "block",
    "reasons": ["min_accuracy: 0.7000 >= 0.8500 → FAIL"],
    "checks": [
        {"name": "min_accuracy", "value": 0.7, "threshold": 0.85, "comparison": ">=", "passed": False, "detail": ""}
    ],
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
        "min_accuracy",
        0.7,
        0.85,
        False,
    )
    assert summary["champion"] == {"version": "v1", "metrics": {"accuracy": 0.8}}
    assert summary["mlflow_run_id"] == "r1"
    markdown = summary_markdown(summary)
    assert "min_accuracy" in visible_text(markdown) and "champion `v1`" in markdown
    assert tables(markdown)[0] == [["metric", "candidate", "champion v1"], ["accuracy", "0.7", "0.8"]]
    assert ["model", "min_accuracy", "critical", "0.7", ">= 0.85", "FAIL"] in tables(markdown)[1]
    assert "em" not in tag_names(markdown)  # snake_case names never turn into italics


def test_deployed_and_champion_changed():
    gate = {**GATE, "decision": "deploy", "reasons": []}
    deployment = {
        "promoted": True,
        "version": "v2",
        "version_uri": "/r/m/versions/v2",
        "blocked_reason": None,
        "mlflow_model_version": "3",
        "mlflow_mirror": "synced",
    }
    summary = build_summary(validation=VALIDATION_OK, gate=gate, deployment=deployment)
    assert summary["outcome"] == "deployed" and summary["deployed"]["version"] == "v2" and summary["blocked_by"] is None
    lost = build_summary(
        validation=VALIDATION_OK,
        gate=gate,
        deployment={**deployment, "promoted": False, "blocked_reason": "champion_changed: moved"},
    )
    assert (lost["outcome"], lost["blocked_by"], lost["deployed"]) == ("blocked", "champion_changed", None)
    assert lost["reasons"] == ["champion_changed: moved"]


def test_failed_names_the_step_and_cause():
    summary = build_summary(validation=None, error="DataError: x.csv: no such file", failed_step="validate-data")
    assert summary["outcome"] == "failed" and summary["reasons"] == [
        "validate-data failed: DataError: x.csv: no such file"
    ]
    assert "# Failed" in summary_markdown(summary)


DRIFT_REPORT = {
    "drifted_share": 0.5,
    "max_psi": 1.7,
    "thresholds": {"drift_psi_threshold": 0.2},
    "features": [
        {
            "feature": "income",
            "psi": 1.7,
            "drifted": True,
            "test": "ks",
            "statistic": 0.5,
            "p_value": 0.0,
            "effect": 0.5,
        },
        {
            "feature": "region",
            "psi": 0.01,
            "drifted": False,
            "test": "chi2",
            "statistic": 3.0,
            "p_value": 0.4,
            "effect": 0.02,
        },
    ],
}


def drift_record(decision="train", reason=None, action="block", drifted=False, deploy_allowed=True, report=None):
    return {
        "decision": decision,
        "reason": reason,
        "drift_action": action,
        "drifted": drifted,
        "deploy_allowed": deploy_allowed,
        "reasons": ["1 of 2 features drifted"] if drifted else [],
        "notes": [],
        "champion": "v1",
        "data_sha256": "ab",
        "report": report,
    }


def test_skipped_for_no_new_data():
    drift = {**drift_record("skip", "no_new_data"), "reasons": ["no_new_data: the batch is the champion's data"]}
    summary = build_summary(validation=VALIDATION_OK, drift=drift)
    assert (summary["outcome"], summary["blocked_by"], summary["skip_reason"]) == ("skipped", None, "no_new_data")
    assert summary["reasons"] == ["no_new_data: the batch is the champion's data"]
    assert visible_text(summary_markdown(summary)).strip().startswith("Skipped: no_new_data")


def test_blocked_by_drift_lists_each_feature_as_a_check():
    drift = drift_record("block", "drift", drifted=True, report=DRIFT_REPORT)
    summary = build_summary(validation=VALIDATION_OK, drift=drift)
    assert (summary["outcome"], summary["blocked_by"], summary["reasons"]) == (
        "blocked",
        "drift",
        ["1 of 2 features drifted"],
    )
    checks = {c["name"]: c for c in summary["checks"] if c["gate"] == "drift"}
    assert checks["drift[income] PSI"]["passed"] is False and checks["drift[income] PSI"]["value"] == 1.7
    assert checks["drift[region] PSI"]["passed"] is True and checks["drift[income] PSI"]["severity"] == "critical"
    assert summary["drift"]["drifted_features"] == ["income"] and summary["drift"]["max_psi"] == 1.7
    markdown = summary_markdown(summary)
    assert "# Blocked by the drift gate" in markdown
    assert ["drift", "drift[income] PSI", "critical", "1.7", "<= 0.2", "FAIL"] in tables(markdown)[0]


def test_a_feature_that_drifted_on_its_test_shows_the_statistic_it_was_judged_on():
    """Not the PSI (0.025 < 0.2, it would read as a pass with FAIL beside it): chi-squared significant, Cramér's V
    over its threshold."""
    report = {
        **DRIFT_REPORT,
        "thresholds": {"drift_psi_threshold": 0.2, "drift_alpha": 0.01, "drift_min_cramers_v": 0.1},
        "features": [
            {"feature": "gender", "psi": 0.02515, "drifted": True, "test": "chi2", "statistic": 40.0,
             "p_value": 1e-9, "effect": 0.16},
        ],
    }  # fmt: skip
    summary = build_summary(validation=VALIDATION_OK, drift=drift_record("block", "drift", drifted=True, report=report))
    (check,) = [c for c in summary["checks"] if c["gate"] == "drift"]
    assert (check["name"], check["value"], check["threshold"]) == ("drift[gender] Cramér's V (p=1e-09)", 0.16, 0.1)
    assert ["drift", "drift[gender] Cramér's V (p=1e-09)", "critical", "0.16", "< 0.1", "FAIL"] in tables(
        summary_markdown(summary)
    )[0]


def test_a_warning_level_check_that_failed_is_shown_as_a_warning_never_as_fail():
    validation = {
        **VALIDATION_OK,
        "checks": [
            {"rule": "expect_column_values_to_be_in_set", "column": "city", "severity": "warning", "passed": False,
             "observed": {"unexpected_percent": 2.0}, "expected": {}},
        ],
    }  # fmt: skip
    summary = build_summary(validation=validation)
    rows = tables(summary_markdown(summary))[0]
    row = next(r for r in rows if r[1] == "expect_column_values_to_be_in_set[city]")
    assert row[-1] == "warn"


def test_warn_reports_drift_as_warnings_and_does_not_block():
    drift = drift_record(action="warn", drifted=True, report=DRIFT_REPORT)
    deployment = {
        "promoted": True,
        "version": "v2",
        "version_uri": "u",
        "mlflow_model_version": "2",
        "mlflow_mirror": "synced",
        "blocked_reason": None,
    }
    summary = build_summary(
        validation=VALIDATION_OK, drift=drift, gate={**GATE, "decision": "deploy", "reasons": []}, deployment=deployment
    )
    assert summary["outcome"] == "deployed" and summary["warnings"] == ["drift (warn): 1 of 2 features drifted"]
    assert {c["severity"] for c in summary["checks"] if c["gate"] == "drift"} == {"warning"}
    assert "## Warnings" in summary_markdown(summary)


def test_a_retrain_only_hold_is_blocked_by_drift_but_a_failed_threshold_is_the_model_gate():
    hold = {
        "name": "drift_action",
        "value": None,
        "threshold": None,
        "comparison": "==",
        "passed": False,
        "detail": "retrain_only",
    }
    drift = drift_record(action="retrain_only", drifted=True, deploy_allowed=False, report=DRIFT_REPORT)
    held = build_summary(validation=VALIDATION_OK, drift=drift, gate={**GATE, "checks": [hold], "reasons": ["held"]})
    assert (held["outcome"], held["blocked_by"]) == ("blocked", "drift")
    both = build_summary(validation=VALIDATION_OK, drift=drift, gate={**GATE, "checks": [*GATE["checks"], hold]})
    assert both["blocked_by"] == "model"


def test_the_kfp_ui_renders_names_in_code_checks_as_tables_and_no_none():
    """Through the KFP UI's own renderer (markdown-to-jsx 7.7.17, raw HTML off): every identifier
    in a code element (never <em>), a table per section, numbers at 4 significant digits, and
    no "None" or Python repr anywhere."""
    from tests.kfp_markdown import kfp_elements

    validation = {
        **VALIDATION_OK,
        "checks": [
            {
                "rule": "expect_column_values_to_be_between",
                "column": "credit_amount",
                "severity": "critical",
                "passed": False,
                "observed": {"unexpected_percent": 3.3333333, "unexpected_count": 5},
                "expected": {"min_value": 0, "max_value": 20000},
            },
            {
                "rule": "expect_column_values_to_not_be_null",
                "column": "age",
                "severity": "warning",
                "passed": True,
                "observed": None,
                "expected": None,
            },
        ],
    }
    gate = {
        **GATE,
        "checks": [
            *GATE["checks"],
            {
                "name": "min_roc_auc",
                "value": 0.712345678,
                "threshold": 0.7,
                "comparison": ">=",
                "passed": True,
                "detail": "",
            },
        ],
    }
    summary = build_summary(validation=validation, gate=gate, kfp_run_id="8f14e45f")
    markdown = summary_markdown(summary)
    ui = kfp_elements(markdown)
    names = {tag for tag, _ in ui.tags}
    assert "em" not in names and {"table", "code", "h1", "h2"} <= names
    assert "None" not in markdown and "{'" not in markdown and "0.712345678" not in markdown
    metrics, checks = ui.tables
    assert metrics[0] == ["metric", "candidate", "champion v1"]
    assert checks[0] == ["gate", "check", "severity", "value", "threshold", "verdict"]
    rows = {row[1]: row for row in checks[1:]}
    assert rows["expect_column_values_to_be_between[credit_amount]"] == [
        "data",
        "expect_column_values_to_be_between[credit_amount]",
        "critical",
        "unexpected_percent 3.333, unexpected_count 5",
        "min_value 0, max_value 20000",
        "FAIL",
    ]
    assert rows["min_accuracy"][3:] == ["0.7", ">= 0.85", "FAIL"]
    html = __import__("tests.kfp_markdown", fromlist=["render_as_kfp_ui"]).render_as_kfp_ui(markdown)
    assert (
        "<code>min_accuracy</code>" in html and "<code>expect_column_values_to_be_between[credit_amount]</code>" in html
    )
    assert "min_roc_auc" not in rows  # a blocked run's summary lists what failed; the gate report lists every check


def _serving(served: bool, restored: str | None = None) -> dict:
    return {
        "served": served,
        "namespace": "team-a",
        "service": "credit",
        "mode": "Knative",
        "version": "v2",
        "stable_version": "v1",
        "canary_percent": 10 if served else 0,
        "action": "canary" if served else "canary_aborted",
        "runtime": "unchanged",
        "why": "ready" if served else "Ready is False: RevisionFailed",
        "champion_restored_to": restored,
        "url": None,
    }


def test_a_serving_run_says_what_serves_and_a_failed_canary_is_blocked_with_the_champion_back():
    from gated_training.reports.summary import build_summary, summary_markdown

    validation = VALIDATION_OK
    deployment = {
        "promoted": True,
        "version": "v2",
        "version_uri": "gs://r/v2",
        "mlflow_model_version": None,
        "mlflow_mirror": "synced",
        "blocked_reason": None,
    }
    served = build_summary(validation=validation, deployment=deployment, serving=_serving(True))
    assert served["outcome"] == "deployed" and served["deployed"]["version"] == "v2"
    assert "version `v2` ready, serving a canary with 10 % of the traffic (stable `v1`)" in summary_markdown(served)
    failed = build_summary(validation=validation, deployment=deployment, serving=_serving(False, restored="v1"))
    assert failed["outcome"] == "blocked" and failed["blocked_by"] == "serving" and failed["deployed"] is None
    assert failed["reasons"] == [
        "InferenceService team-a/credit (Knative): version v2 did not become Ready (Ready is False: "
        "RevisionFailed); canary aborted, champion restored to v1"
    ]
    text = summary_markdown(failed)
    assert text.startswith("# Blocked by the serving gate") and "not ready" in text and "New champion" not in text


def test_a_data_check_reason_is_a_sentence_never_a_python_dict():
    from gated_training.steps.validate_data import CheckResult

    check = CheckResult(
        rule="expect_column_values_to_be_in_set",
        column="city",
        severity="critical",
        passed=False,
        observed={"unexpected_percent": 2.5, "unexpected_count": 3, "sample_unexpected": ["x", "y"]},
    )
    assert check.describe() == (
        "critical rule expect_column_values_to_be_in_set on column 'city' failed: observed unexpected percent 2.5; "
        "unexpected count 3; sample unexpected: x, y"
    )


def test_a_deployed_summary_leads_with_the_model_checks_and_counts_the_data_checks_that_passed():
    data_checks = [
        {"rule": rule, "column": column, "severity": severity, "passed": True, "observed": None, "expected": {}}
        for column in "abcdefghij"
        for rule, severity in (
            ("expect_column_to_exist", "critical"),
            ("expect_column_values_to_not_be_null", "critical"),
            ("expect_column_values_to_be_in_set", "warning"),
        )
    ]
    noted = {**data_checks[2], "column": "city", "passed": False, "observed": {"unexpected_percent": 2.0}}
    validation = {**VALIDATION_OK, "checks": [*data_checks, noted]}
    passing = {**GATE["checks"][0], "value": 0.9, "passed": True}
    deployment = {"promoted": True, "version": "v2", "version_uri": "u", "mlflow_model_version": "2",
                  "mlflow_mirror": "synced", "blocked_reason": None}  # fmt: skip
    summary = build_summary(
        validation=validation,
        gate={**GATE, "decision": "deploy", "reasons": [], "checks": [passing]},
        deployment=deployment,
    )
    assert (
        summary["outcome"] == "deployed" and len(summary["checks"]) == 33
    )  # the JSON keeps every check (and min_quality_score)
    markdown = summary_markdown(summary)
    rows = tables(markdown)[1][1:]
    # The warning that did not pass leads, then the model gate; the 31 data checks that passed are one sentence.
    assert [(r[0], r[1]) for r in rows] == [
        ("data", "expect_column_values_to_be_in_set[city]"),
        ("model", "min_accuracy"),
    ]
    assert "The data gate's other 31 checks passed (21 critical, 10 warning)" in visible_text(markdown)
    assert len(markdown.splitlines()) < 40

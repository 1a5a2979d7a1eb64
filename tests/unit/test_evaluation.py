"""The model gate end to end in-process: real trained candidates, a real registry champion."""

import json
from pathlib import Path

import pytest

from gated_training.config import GateThresholds
from gated_training.decisions import ModelGate
from gated_training.errors import RegistryError
from gated_training.registry.store import MODEL_FILE, ModelRegistry
from gated_training.steps.evaluate_model import BLOCK, DEPLOY, evaluate_model
from tests.builders import train_candidate
from tests.conftest import synthetic_frame
from tests.markdown_render import tables

LENIENT = dict(min_accuracy=0.5, max_overfit_gap=0.5, min_balanced_accuracy=0.5)


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    return train_candidate(tmp_path_factory.mktemp("candidate"), synthetic_frame(500, seed=5))


def evaluate(candidate, tmp_path, thresholds, registry_uri=None, drift_report_path=""):
    registry_uri = registry_uri or str(tmp_path / "registry")
    decision = evaluate_model(
        model_path=candidate.path("model.joblib"),
        test_path=candidate.path("test.parquet"),
        training_report_path=candidate.path("training.json"),
        target="label",
        thresholds=thresholds,
        registry_uri=registry_uri,
        model_name="m",
        decision_out=str(tmp_path / "decision.json"),
        report_out=str(tmp_path / "report.md"),
        drift_report_path=drift_report_path,
        feature_metadata_path=candidate.path("meta.json"),
    )
    return decision, json.loads((tmp_path / "decision.json").read_text()), (tmp_path / "report.md").read_text()


def install_champion(tmp_path, model_file: str) -> str:
    registry = ModelRegistry(str(tmp_path / "registry"), "m")
    version, sha = registry.publish({MODEL_FILE: Path(model_file).read_bytes()}, {})
    registry.promote(version, sha, None, "test")
    return version


def test_first_run_deploys_when_thresholds_pass_and_every_check_states_its_evidence(candidate, tmp_path):
    decision, written, report = evaluate(candidate, tmp_path, GateThresholds(**LENIENT))
    assert decision.decision == DEPLOY and written["decision"] == "deploy" and written["champion"] is None
    assert "No champion yet." in report and "# Model gate: **DEPLOY**" in report
    names = [c["name"] for c in written["checks"]]
    assert names[:5] == [
        "min_test_rows",
        "min_test_rows_per_class",
        "min_accuracy",
        "min_balanced_accuracy",
        "beats_prior_predictor",
    ]
    assert "not_worse_than_champion (accuracy)" in names and "max_pair_feature_score" in names
    accuracy = next(c for c in written["checks"] if c["name"] == "min_accuracy")
    rows = written["candidate"]["test_rows"]
    assert accuracy["evidence"]["rows"] == rows and accuracy["evidence"]["rule"] == "threshold_rule=point"
    low, high = accuracy["evidence"]["interval"]
    assert low < accuracy["value"] < high and accuracy["evidence"]["method"] == "Wilson score interval"
    # The prior predictor sits beside the candidate, on the same rows.
    assert written["baseline"]["metrics"]["balanced_accuracy"] == pytest.approx(0.5)
    header = tables(report)[1][0] if len(tables(report)) > 1 else None
    assert "prior predictor" in report and header is not None


def test_first_run_policy_block(candidate, tmp_path):
    decision, _, _ = evaluate(candidate, tmp_path, GateThresholds(**LENIENT, first_run_policy="block"))
    assert decision.decision == BLOCK and "first_run_policy=block" in decision.reasons[0]


def test_each_absolute_threshold_can_block(candidate, tmp_path):
    strict = GateThresholds(
        min_accuracy=0.99,
        min_f1=0.99,
        min_roc_auc=0.999,
        max_overfit_gap=0.0,
        min_balanced_accuracy=0.99,
        min_class_recall=0.99,
    )
    decision, _, report = evaluate(candidate, tmp_path, strict)
    failed = {c.name for c in decision.checks if not c.passed}
    assert failed >= {"min_accuracy", "min_f1", "min_roc_auc", "min_balanced_accuracy", "min_class_recall"}
    assert decision.decision == BLOCK and "**FAIL**" in report
    assert any(row[0] == "min_accuracy" and row[3] == "FAIL" for row in tables(report)[0])


def test_the_lower_bound_rule_blocks_what_the_point_rule_passes(candidate, tmp_path):
    point, _, _ = evaluate(candidate, tmp_path, GateThresholds(**{**LENIENT, "min_accuracy": 0.0}))
    accuracy = next(c for c in point.checks if c.name == "min_accuracy")
    low, _ = accuracy.evidence["interval"]
    between = round((low + accuracy.value) / 2, 4)  # above the interval's lower bound, below the estimate
    passes, _, _ = evaluate(candidate, tmp_path, GateThresholds(**{**LENIENT, "min_accuracy": between}))
    strict, _, _ = evaluate(
        candidate, tmp_path, GateThresholds(**{**LENIENT, "min_accuracy": between}, threshold_rule="lower_bound")
    )
    assert next(c for c in passes.checks if c.name == "min_accuracy").passed
    check = next(c for c in strict.checks if c.name == "min_accuracy")
    assert not check.passed and "interval's lower bound must reach" in check.detail


def test_the_champion_is_rescored_on_the_same_rows_and_equal_is_not_worse(candidate, tmp_path):
    version = install_champion(tmp_path, candidate.path("model.joblib"))
    decision, written, report = evaluate(candidate, tmp_path, GateThresholds(**LENIENT))
    assert decision.champion["version"] == version
    assert decision.champion["metrics"]["accuracy"] == pytest.approx(decision.candidate["metrics"]["accuracy"])
    assert decision.decision == DEPLOY
    check = next(c for c in written["checks"] if c["name"] == "not_worse_than_champion (accuracy)")
    evidence = check["evidence"]
    assert (evidence["wins"], evidence["losses"], evidence["estimate"]) == (0, 0, 0.0)
    assert evidence["verdict"] == "no significant difference" and evidence["p_value"] == 1.0
    assert written["champion"]["pointer_token"]
    assert "## Candidate against the champion (paired, same rows)" in report


def test_a_much_worse_candidate_is_blocked_as_significantly_worse(candidate, tmp_path):
    from gated_training.config import ModelSettings

    frame = synthetic_frame(1500, seed=5, noise=0.3)
    better = train_candidate(tmp_path / "strong", frame)
    weak = train_candidate(tmp_path / "weak", frame, settings=ModelSettings(n_estimators=1, max_depth=1, cv_folds=3))
    install_champion(tmp_path, better.path("model.joblib"))
    decision, _, _ = evaluate(
        weak,
        tmp_path,
        GateThresholds(min_accuracy=0.0, max_overfit_gap=1.0, min_balanced_accuracy=0.0, beat_prior_predictor=False),
    )
    check = next(c for c in decision.checks if c.name.startswith("not_worse_than_champion"))
    assert not check.passed and check.evidence["verdict"] == "significantly worse"
    assert "exact McNemar" in check.detail and decision.decision == BLOCK


def test_a_corrupt_champion_fails_closed(candidate, tmp_path):
    version = install_champion(tmp_path, candidate.path("model.joblib"))
    (tmp_path / "registry" / "m" / "versions" / version / MODEL_FILE).write_bytes(b"not the model")
    with pytest.raises(RegistryError, match="gate fails closed.*the file was altered"):
        evaluate(candidate, tmp_path, GateThresholds(**LENIENT))


def test_the_champion_comparison_reports_prediction_drift_and_agreement(candidate, tmp_path):
    install_champion(tmp_path, candidate.path("model.joblib"))
    _, written, report = evaluate(candidate, tmp_path, GateThresholds(**LENIENT))
    assert written["prediction_drift"]["agreement"] == 1.0 and written["prediction_drift"]["psi"] == pytest.approx(0.0)
    assert "max_prediction_psi" in {c["name"] for c in written["checks"]}
    assert "- agreement: 100%" in report
    _, written, _ = evaluate(candidate, tmp_path, GateThresholds(**LENIENT, max_prediction_psi=0.0))
    assert "max_prediction_psi" not in {c["name"] for c in written["checks"]}  # 0 switches the check off
    assert written["prediction_drift"] is not None  # still reported


def test_retrain_only_holds_a_candidate_that_passes_every_other_check(candidate, tmp_path):
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"deploy_allowed": False}))
    decision, _, _ = evaluate(candidate, tmp_path, GateThresholds(**LENIENT), drift_report_path=str(drift))
    failed = [c for c in decision.checks if not c.passed]
    assert [c.name for c in failed] == [ModelGate.DRIFT_HOLD_CHECK] and decision.decision == BLOCK
    assert "retrain_only" in decision.reasons[0]
    drift.write_text(json.dumps({"deploy_allowed": True}))
    assert evaluate(candidate, tmp_path, GateThresholds(**LENIENT), drift_report_path=str(drift))[0].decision == DEPLOY


def test_slices_name_a_column_the_rows_lack_and_report_every_slice(candidate, tmp_path):
    install_champion(tmp_path, candidate.path("model.joblib"))
    decision, _, _ = evaluate(candidate, tmp_path, GateThresholds(**LENIENT, slice_by="nowhere"))
    check = next(c for c in decision.checks if c.name == "slices")
    assert not check.passed and "slice_by names column(s) nowhere that the test rows lack" in check.detail
    decision, written, report = evaluate(
        candidate, tmp_path, GateThresholds(**LENIENT, slice_by="colour", min_slice_rows=10)
    )
    check = next(c for c in written["checks"] if c["name"] == "slices_not_worse_than_champion")
    assert check["passed"] and {s["column"] for s in check["evidence"]["slices"]} == {"colour"}
    assert "## Slices" in report


def test_a_champion_trained_on_a_column_the_split_lacks_is_named_not_scored(candidate, tmp_path, monkeypatch):
    """The champion's schema contract names a column today's test split does not have: the gate says which, in
    its own words, before it tries to score the champion (pandas' failure to select it said "Length mismatch"),
    and the comparison fails closed; the registry is untouched."""
    from gated_training.registry.store import FEATURE_METADATA_FILE
    from gated_training.steps import evaluate_model as step
    from tests.registry_helpers import registry_bytes

    inputs = json.loads(Path(candidate.path("meta.json")).read_text())["inputs"]
    metadata = {"inputs": [*inputs, {"name": "income band", "dtype": "object"}, {"name": "zip", "dtype": "object"}]}
    registry = ModelRegistry(str(tmp_path / "registry"), "m")
    files = {
        MODEL_FILE: Path(candidate.path("model.joblib")).read_bytes(),
        FEATURE_METADATA_FILE: json.dumps(metadata).encode(),
    }
    version, sha = registry.publish(files, {})
    registry.promote(version, sha, None, "test")
    before = registry_bytes(tmp_path / "registry")
    scored: list[str] = []
    score = step.PandasTestSplit.score
    monkeypatch.setattr(
        step.PandasTestSplit, "score", lambda self, model, rows=None: (scored.append("x"), score(self, model, rows))[1]
    )
    decision, written, report = evaluate(candidate, tmp_path, GateThresholds(**LENIENT))
    assert written["champion"]["comparison"]["note"] == (
        f"champion {version} could not be scored on this test split: it was trained on column(s) income band, zip, "
        "which this split does not have"
    )
    assert decision.decision == BLOCK and len(scored) == 1  # the candidate alone was scored
    assert registry_bytes(tmp_path / "registry") == before

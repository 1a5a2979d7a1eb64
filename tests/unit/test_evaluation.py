import json
from pathlib import Path

import numpy as np
import pytest

from gated_training.config import GateThresholds
from gated_training.drift import prediction_psi
from gated_training.errors import RegistryError
from gated_training.steps.evaluate_model import BLOCK, DEPLOY, evaluate_model, prediction_drift, prediction_psi_check
from gated_training.metrics import Scores
from gated_training.decisions import ModelGate
from gated_training.registry import MODEL_FILE, ModelRegistry
from tests.conftest import synthetic_frame
from tests.markdown_render import tables
from tests.builders import train_candidate

LENIENT = dict(min_accuracy=0.5, max_overfit_gap=0.5)


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    return train_candidate(tmp_path_factory.mktemp("candidate"), synthetic_frame(500, seed=5))


def evaluate(candidate, tmp_path, thresholds, registry_uri=None, drift_report_path=""):
    registry_uri = registry_uri or str(tmp_path / "registry")
    decision = evaluate_model(model_path=candidate.path("model.joblib"), test_path=candidate.path("test.parquet"),
                                  training_report_path=candidate.path("training.json"), target="label", thresholds=thresholds, registry_uri=registry_uri, model_name="m",
                                  decision_out=str(tmp_path / "decision.json"), report_out=str(tmp_path / "report.md"), drift_report_path=drift_report_path)
    return decision, json.loads((tmp_path / "decision.json").read_text()), (tmp_path / "report.md").read_text()


def install_champion(tmp_path, model_file: str) -> str:
    registry = ModelRegistry(str(tmp_path / "registry"), "m")
    version, sha = registry.publish({MODEL_FILE: Path(model_file).read_bytes()}, {})
    registry.promote(version, sha, None, "test")
    return version


def test_first_run_deploys_when_thresholds_pass(candidate, tmp_path):
    decision, written, report = evaluate(candidate, tmp_path, GateThresholds(**LENIENT))
    assert decision.decision == DEPLOY and written["decision"] == "deploy" and written["champion"] is None
    assert "no champion yet" in report and "# Model gate: **DEPLOY**" in report
    assert {c["name"] for c in written["checks"]} == {"min_accuracy", "max_overfit_gap", "not_worse_than_champion (accuracy)"}


def test_first_run_policy_block(candidate, tmp_path):
    decision, _, _ = evaluate(candidate, tmp_path, GateThresholds(**LENIENT, first_run_policy="block"))
    assert decision.decision == BLOCK and "first_run_policy=block" in decision.reasons[0]


def test_each_absolute_threshold_can_block(candidate, tmp_path):
    strict = GateThresholds(min_accuracy=0.99, min_f1=0.99, min_roc_auc=0.999, max_overfit_gap=0.0)
    decision, _, report = evaluate(candidate, tmp_path, strict)
    failed = {c.name for c in decision.checks if not c.passed}
    assert failed >= {"min_accuracy", "min_f1", "min_roc_auc"}
    assert decision.decision == BLOCK and "**FAIL**" in report
    assert any(row[0] == "min_accuracy" and row[3] == "FAIL" for row in tables(report)[0])


def test_champion_is_rescored_on_the_same_test_split(candidate, tmp_path):
    version = install_champion(tmp_path, candidate.path("model.joblib"))
    decision, written, report = evaluate(candidate, tmp_path, GateThresholds(**LENIENT))
    assert decision.champion["version"] == version
    assert decision.champion["metrics"]["accuracy"] == pytest.approx(decision.candidate["metrics"]["accuracy"])
    assert decision.decision == DEPLOY  # equal is "not worse"
    assert written["champion"]["pointer_token"]


def test_worse_than_champion_blocks(candidate, tmp_path):
    better = train_candidate(tmp_path / "strong", synthetic_frame(500, seed=5, noise=0.01))
    weak = train_candidate(tmp_path / "weak", synthetic_frame(500, seed=5, noise=3.0))
    install_champion(tmp_path, better.path("model.joblib"))
    decision, _, _ = evaluate(weak, tmp_path, GateThresholds(min_accuracy=0.0, max_overfit_gap=1.0, max_regression=0.0))
    champion_check = next(c for c in decision.checks if c.name.startswith("not_worse_than_champion"))
    assert not champion_check.passed and "champion" in champion_check.detail
    assert decision.decision == BLOCK


def test_corrupt_champion_fails_closed(candidate, tmp_path):
    version = install_champion(tmp_path, candidate.path("model.joblib"))
    (tmp_path / "registry" / "m" / "versions" / version / MODEL_FILE).write_bytes(b"not the model")
    with pytest.raises(RegistryError, match="gate fails closed.*the file was altered"):
        evaluate(candidate, tmp_path, GateThresholds(**LENIENT))


def scores(accuracy: float, predicted: list[int]) -> Scores:
    return Scores(accuracy=accuracy, f1=accuracy, roc_auc=None, labels=[0, 1], confusion_matrix=[[0, 0], [0, 0]], roc_curve=None, predicted=np.asarray(predicted))


@pytest.mark.parametrize(("candidate_accuracy", "passes"), [(0.805, False), (0.90, True)])
def test_a_candidate_that_predicts_very_differently_must_be_clearly_better(candidate_accuracy, passes):
    champion = scores(0.80, [0] * 50 + [1] * 50)
    candidate = scores(candidate_accuracy, [0] * 10 + [1] * 90)  # same rows, a very different label mix
    thresholds = GateThresholds(max_regression=0.01, max_prediction_psi=0.2)
    drift = prediction_drift(candidate, champion, {"0": 40, "1": 60})
    assert drift["agreement"] == pytest.approx(0.6) and drift["psi"] > 0.2
    assert drift["candidate_distribution"] == {"0": 10, "1": 90} and drift["champion_distribution"] == {"0": 50, "1": 50}
    assert drift["champion_vs_its_reference_psi"] == pytest.approx(prediction_psi({"0": 40, "1": 60}, champion.predicted))
    check = prediction_psi_check(candidate, champion, drift, thresholds)
    assert (check.name, check.passed, check.threshold) == ("max_prediction_psi", passes, 0.2)
    assert "agreement with the champion 60.0%" in check.detail


def test_similar_predictions_pass_the_prediction_psi_check():
    champion = scores(0.80, [0] * 50 + [1] * 50)
    candidate = scores(0.80, [1] * 3 + [0] * 47 + [0] * 3 + [1] * 47)
    drift = prediction_drift(candidate, champion, None)
    assert drift["psi"] == pytest.approx(0.0) and drift["agreement"] == pytest.approx(0.94)
    assert drift["champion_vs_its_reference_psi"] is None
    assert prediction_psi_check(candidate, champion, drift, GateThresholds()).passed


def test_champion_comparison_reports_prediction_drift_and_agreement(candidate, tmp_path):
    install_champion(tmp_path, candidate.path("model.joblib"))
    decision, written, report = evaluate(candidate, tmp_path, GateThresholds(**LENIENT))
    assert written["prediction_drift"]["agreement"] == 1.0 and written["prediction_drift"]["psi"] == pytest.approx(0.0)
    assert "max_prediction_psi" in {c["name"] for c in written["checks"]}
    assert "- agreement: 100%" in report
    off = GateThresholds(**LENIENT, max_prediction_psi=0.0)
    decision, written, _ = evaluate(candidate, tmp_path, off)
    assert "max_prediction_psi" not in {c["name"] for c in written["checks"]}  # 0 switches the check off
    assert written["prediction_drift"] is not None  # still reported


def test_retrain_only_holds_a_candidate_that_passes_every_other_check(candidate, tmp_path):
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"deploy_allowed": False}))
    decision, written, _ = evaluate(candidate, tmp_path, GateThresholds(**LENIENT), drift_report_path=str(drift))
    failed = [c for c in decision.checks if not c.passed]
    assert [c.name for c in failed] == [ModelGate.DRIFT_HOLD_CHECK] and decision.decision == BLOCK
    assert "retrain_only" in decision.reasons[0]
    drift.write_text(json.dumps({"deploy_allowed": True}))
    assert evaluate(candidate, tmp_path, GateThresholds(**LENIENT), drift_report_path=str(drift))[0].decision == DEPLOY

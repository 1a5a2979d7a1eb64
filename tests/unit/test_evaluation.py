import json
from pathlib import Path

import pytest

from gated_training.config import GateThresholds
from gated_training.errors import RegistryError
from gated_training.evaluation import BLOCK, DEPLOY, evaluate_candidate
from gated_training.registry import MODEL_FILE, ModelRegistry
from tests.conftest import synthetic_frame
from tests.unit.helpers import train_candidate

LENIENT = dict(min_accuracy=0.5, max_overfit_gap=0.5)


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    return train_candidate(tmp_path_factory.mktemp("candidate"), synthetic_frame(500, seed=5))


def evaluate(candidate, tmp_path, thresholds, registry_uri=None):
    registry_uri = registry_uri or str(tmp_path / "registry")
    decision = evaluate_candidate(candidate.path("model.joblib"), candidate.path("test.parquet"),
                                  candidate.path("training.json"), "label", thresholds, registry_uri, "m",
                                  str(tmp_path / "decision.json"), str(tmp_path / "report.md"))
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
    assert decision.decision == BLOCK and "| min_accuracy |" in report and "**FAIL**" in report


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
    champion_check = decision.checks[-1]
    assert not champion_check.passed and "champion" in champion_check.detail
    assert decision.decision == BLOCK


def test_corrupt_champion_fails_closed(candidate, tmp_path):
    version = install_champion(tmp_path, candidate.path("model.joblib"))
    (tmp_path / "registry" / "m" / "versions" / version / MODEL_FILE).write_bytes(b"not the model")
    with pytest.raises(RegistryError, match="gate fails closed.*the file was altered"):
        evaluate(candidate, tmp_path, GateThresholds(**LENIENT))

"""Step 4, the model gate: absolute thresholds, then the champion re-scored on the same test split."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from gated_training.config import GateThresholds
from gated_training.data import json_safe, read_parquet, split_features_target
from gated_training.drift import prediction_counts, prediction_psi
from gated_training.errors import RegistryError
from gated_training.metrics import Scores, score_model
from gated_training.registry import MODEL_FILE, REFERENCE_PROFILE_FILE, ModelRegistry
from gated_training.summary import DRIFT_HOLD_CHECK

DEPLOY = "deploy"
BLOCK = "block"


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    threshold: float | None
    comparison: str  # ">=" or "<="
    passed: bool
    detail: str = ""

    def line(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4f}"
        threshold = "n/a" if self.threshold is None else f"{self.threshold:.4f}"
        verdict = "pass" if self.passed else "FAIL"
        return f"{self.name}: {value} {self.comparison} {threshold} → {verdict}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class GateDecision:
    decision: str  # DEPLOY or BLOCK
    reasons: list[str]
    checks: list[Check]
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    thresholds: dict[str, Any]
    scores: dict[str, Any] = field(default_factory=dict)  # confusion matrices, ROC: for the UI
    prediction_drift: dict[str, Any] | None = None  # candidate vs champion predictions on the same test split

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))  # type: ignore[return-value]


def _at_least(name: str, value: float | None, minimum: float, detail: str = "") -> Check:
    passed = value is not None and value >= minimum
    return Check(name, value, minimum, ">=", passed, detail or ("undefined for this test split" if value is None else ""))


def absolute_checks(candidate: Scores, overfit_gap: float, thresholds: GateThresholds) -> list[Check]:
    checks = [_at_least("min_accuracy", candidate.accuracy, thresholds.min_accuracy)]
    if thresholds.min_f1 > 0:
        checks.append(_at_least("min_f1", candidate.f1, thresholds.min_f1))
    if thresholds.min_roc_auc > 0:
        checks.append(_at_least("min_roc_auc", candidate.roc_auc, thresholds.min_roc_auc))
    checks.append(Check("max_overfit_gap", overfit_gap, thresholds.max_overfit_gap, "<=",
                        overfit_gap <= thresholds.max_overfit_gap, "train accuracy − test accuracy"))
    return checks


def champion_check(candidate: Scores, champion: Scores | None, champion_version: str | None,
                   thresholds: GateThresholds) -> Check:
    metric = thresholds.comparison_metric
    name = f"not_worse_than_champion ({metric})"
    if champion is None:
        if thresholds.first_run_policy == "block":
            return Check(name, None, None, ">=", False, "no champion yet and first_run_policy=block")
        return Check(name, None, None, ">=", True, "no champion yet: first run, first_run_policy=deploy_if_thresholds_pass")
    candidate_value = candidate.headline().get(metric)
    champion_value = champion.headline().get(metric)
    if candidate_value is None or champion_value is None:
        return Check(name, candidate_value, None, ">=", False, f"{metric} is undefined on this test split")
    minimum = champion_value - thresholds.max_regression
    return Check(name, candidate_value, minimum, ">=", candidate_value >= minimum,
                 f"champion {champion_version} scores {champion_value:.4f} on the same test split; "
                 f"max_regression {thresholds.max_regression}")


def prediction_drift(candidate: Scores, champion: Scores, champion_reference: dict[str, int] | None) -> dict[str, Any]:
    """How differently the two models predict the same rows: PSI of their label distributions and agreement."""
    champion_counts = prediction_counts(champion.predicted)
    return {
        "candidate_distribution": prediction_counts(candidate.predicted),
        "champion_distribution": champion_counts,
        "psi": prediction_psi(champion_counts, candidate.predicted),
        "agreement": float(np.mean(np.asarray(candidate.predicted) == np.asarray(champion.predicted))),
        # The champion on this split against the champion on its own test split at deploy time.
        "champion_vs_its_reference_psi": prediction_psi(champion_reference, champion.predicted)
        if champion_reference else None,
    }


def prediction_psi_check(candidate: Scores, champion: Scores, drift: dict[str, Any], thresholds: GateThresholds) -> Check:
    """A candidate that predicts very differently from the champion must be clearly better to replace it."""
    metric = thresholds.comparison_metric
    gain = (candidate.headline().get(metric) or 0.0) - (champion.headline().get(metric) or 0.0)
    detail = (f"agreement with the champion {drift['agreement']:.1%}; {metric} gain {gain:+.4f}, "
              f"clearly better only above max_regression {thresholds.max_regression}")
    passed = drift["psi"] <= thresholds.max_prediction_psi or gain > thresholds.max_regression
    return Check("max_prediction_psi", drift["psi"], thresholds.max_prediction_psi, "<=", passed, detail)


def evaluate_candidate(
    model_path: str,
    test_path: str,
    training_report_path: str,
    target: str,
    thresholds: GateThresholds,
    registry_uri: str,
    model_name: str,
    decision_out: str,
    report_out: str,
    drift_report_path: str = "",
) -> GateDecision:
    x_test, y_test = split_features_target(read_parquet(test_path), target)
    training = json.loads(Path(training_report_path).read_text())
    candidate = score_model(joblib.load(model_path), x_test, y_test)
    checks = absolute_checks(candidate, float(training["overfit_gap"]), thresholds)

    registry = ModelRegistry(registry_uri, model_name)
    current = registry.champion()
    champion_scores, champion_info, problem, champion_reference = None, None, "", None
    if current is not None:
        champion_info = {"version": current.version, "pointer_token": current.token, "metrics": None}
        try:
            _, contents = registry.verified_files(current.version, current.manifest_sha256)
            champion_model = joblib.load(io.BytesIO(contents[MODEL_FILE]))
            if REFERENCE_PROFILE_FILE in contents:
                champion_reference = json.loads(contents[REFERENCE_PROFILE_FILE]).get("predictions")
        except RegistryError as exc:
            raise RegistryError(f"the champion could not be loaded for comparison, so the gate fails closed: {exc}") from exc
        try:
            champion_scores = score_model(champion_model, x_test, y_test)
            champion_info["metrics"] = champion_scores.headline()
        except Exception as exc:  # e.g. the schema changed since the champion was trained
            problem = f"champion {current.version} could not be scored on this test split: {exc}"
    if problem:
        checks.append(Check(f"not_worse_than_champion ({thresholds.comparison_metric})", None, None, ">=", False, problem))
    else:
        checks.append(champion_check(candidate, champion_scores, current.version if current else None, thresholds))
    predictions = None
    if champion_scores is not None:
        predictions = prediction_drift(candidate, champion_scores, champion_reference)
        if thresholds.max_prediction_psi > 0:
            checks.append(prediction_psi_check(candidate, champion_scores, predictions, thresholds))
    drift = json.loads(Path(drift_report_path).read_text()) if drift_report_path else None
    if drift is not None and not drift["deploy_allowed"]:
        checks.append(Check(DRIFT_HOLD_CHECK, None, None, "==", False,
                            "the batch drifted and drift_action=retrain_only: the candidate is trained and evaluated, "
                            "not deployed; review it, then re-run with drift_action=warn to deploy"))

    reasons = [check.line() for check in checks if not check.passed]
    decision = GateDecision(
        decision=DEPLOY if not reasons else BLOCK,
        reasons=reasons,
        checks=checks,
        candidate={"metrics": candidate.headline(), "cv_accuracy_mean": training["cv_accuracy_mean"],
                   "cv_accuracy_std": training["cv_accuracy_std"], "overfit_gap": training["overfit_gap"],
                   "train_accuracy": training["train"]["accuracy"], "mlflow_run_id": training["mlflow_run_id"]},
        champion=champion_info,
        thresholds=asdict(thresholds),
        scores={"labels": candidate.labels, "confusion_matrix": candidate.confusion_matrix, "roc_curve": candidate.roc_curve},
        prediction_drift=predictions,
    )
    Path(decision_out).write_text(json.dumps(decision.to_json(), indent=2))
    Path(report_out).write_text(gate_report_markdown(decision))
    return decision


def gate_report_markdown(decision: GateDecision) -> str:
    verdict = "**DEPLOY**" if decision.decision == DEPLOY else "**BLOCKED**"
    lines = [f"# Model gate: {verdict}", "", "| check | value | threshold | verdict | detail |", "|---|---|---|---|---|"]
    for check in decision.checks:
        value = "n/a" if check.value is None else f"{check.value:.4f}"
        threshold = "n/a" if check.threshold is None else f"{check.comparison} {check.threshold:.4f}"
        lines.append(f"| {check.name} | {value} | {threshold} | {'pass' if check.passed else '**FAIL**'} | {check.detail} |")
    champion = decision.champion
    lines += ["", f"Candidate metrics on the test split: {_format_metrics(decision.candidate['metrics'])}"]
    lines.append(f"Champion: {champion['version']} — {_format_metrics(champion['metrics'])}" if champion else "Champion: none yet")
    drift = decision.prediction_drift
    if drift:
        lines += ["", f"Predictions on this test split — candidate {drift['candidate_distribution']}, champion "
                  f"{drift['champion_distribution']}: PSI {drift['psi']:.4f}, agreement {drift['agreement']:.1%}"]
        if drift["champion_vs_its_reference_psi"] is not None:
            lines.append(f"Champion's prediction drift against its own test split at deploy time: PSI "
                         f"{drift['champion_vs_its_reference_psi']:.4f}")
    if decision.reasons:
        lines += ["", "Blocked because:"] + [f"- {reason}" for reason in decision.reasons]
    return "\n".join(lines) + "\n"


def _format_metrics(metrics: dict[str, float] | None) -> str:
    if not metrics:
        return "not scored"
    return ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())


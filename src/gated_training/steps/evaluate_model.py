"""evaluate-model, the model gate: absolute thresholds and leakage, then the champion re-scored on the test rows it
never trained on."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from gated_training import tracking
from gated_training.config import GateThresholds
from gated_training.data import json_safe, read_parquet, split_features_target
from gated_training.drift import prediction_counts, prediction_psi
from gated_training.errors import RegistryError
from gated_training.escaping import markdown_text
from gated_training.metrics import Scores, score_model
from gated_training.leakage import leakage_summary
from gated_training.registry import FEATURE_METADATA_FILE, REFERENCE_PROFILE_FILE, ModelRegistry, fitted_model
from gated_training.split import SplitRule, held_out_by
from gated_training.decisions import ModelGate

DEPLOY, BLOCK = ModelGate.DEPLOY, ModelGate.BLOCK


@dataclass(frozen=True, kw_only=True)
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


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    decision: str  # DEPLOY or BLOCK
    reasons: list[str]
    checks: list[Check]
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    thresholds: dict[str, Any]
    scores: dict[str, Any] = field(default_factory=dict)  # confusion matrices, ROC: for the UI
    prediction_drift: dict[str, Any] | None = None  # candidate vs champion predictions on the same test split
    drift: dict[str, Any] | None = None  # the drift gate's decision and warnings (drift_record), kept with the version

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))  # type: ignore[return-value]


def _at_least(name: str, value: float | None, minimum: float, detail: str = "") -> Check:
    passed = value is not None and value >= minimum
    return Check(name=name, value=value, threshold=minimum, comparison=">=", passed=passed, detail=detail or ("undefined for this test split" if value is None else ""))


def absolute_checks(candidate: Scores, overfit_gap: float, thresholds: GateThresholds) -> list[Check]:
    checks = [_at_least("min_accuracy", candidate.accuracy, thresholds.min_accuracy)]
    if thresholds.min_f1 > 0:
        checks.append(_at_least("min_f1", candidate.f1, thresholds.min_f1))
    if thresholds.min_roc_auc > 0:
        checks.append(_at_least("min_roc_auc", candidate.roc_auc, thresholds.min_roc_auc))
    checks.append(Check(name="max_overfit_gap", value=overfit_gap, threshold=thresholds.max_overfit_gap, comparison="<=",
                        passed=overfit_gap <= thresholds.max_overfit_gap, detail="train accuracy − test accuracy"))
    return checks


def champion_check(candidate: Scores, champion: Scores | None, champion_version: str | None,
                   thresholds: GateThresholds) -> Check:
    metric = thresholds.comparison_metric
    name = f"not_worse_than_champion ({metric})"
    if champion is None:
        if thresholds.first_run_policy == "block":
            return Check(name=name, value=None, threshold=None, comparison=">=", passed=False, detail="no champion yet and first_run_policy=block")
        return Check(name=name, value=None, threshold=None, comparison=">=", passed=True, detail="no champion yet: first run, first_run_policy=deploy_if_thresholds_pass")
    candidate_value = candidate.headline().get(metric)
    champion_value = champion.headline().get(metric)
    if candidate_value is None or champion_value is None:
        return Check(name=name, value=candidate_value, threshold=None, comparison=">=", passed=False, detail=f"{metric} is undefined on this test split")
    minimum = champion_value - thresholds.max_regression
    return Check(name=name, value=candidate_value, threshold=minimum, comparison=">=", passed=candidate_value >= minimum,
                 detail=f"champion {champion_version} scores {champion_value:.4f} on the same rows; "
                 f"max_regression {thresholds.max_regression}")


def leakage_check(scores: dict[str, float], classes: int, thresholds: GateThresholds) -> Check:
    """No single feature may predict the label almost perfectly on its own: that is a copy of the label."""
    best_name, best = next(iter(scores.items()), ("", None))
    suspects = [name for name, value in scores.items() if value > thresholds.max_single_feature_score]
    detail = leakage_summary(scores, classes)
    if suspects:
        detail = (f"feature(s) {', '.join(suspects)} predict the label alone (balanced accuracy on the test split): "
                  "a leaked label or a proxy of it; drop the column, or raise max_single_feature_score if it is "
                  "legitimately this predictive")
    return Check(name="max_single_feature_score", value=best, threshold=thresholds.max_single_feature_score, comparison="<=", passed=not suspects, detail=detail)


def unexplained_gain_check(candidate: Scores, champion: Scores, thresholds: GateThresholds,
                           batch_drifted: bool = False) -> Check:
    """A candidate far better than its champion on the same rows is more often a leak than a
    breakthrough, unless the batch drifted: then the champion is expected to fall behind."""
    metric = thresholds.comparison_metric
    candidate_value, champion_value = candidate.headline().get(metric), champion.headline().get(metric)
    if candidate_value is None or champion_value is None:
        return Check(name="max_unexplained_gain", value=None, threshold=thresholds.max_unexplained_gain, comparison="<=", passed=True,
                     detail=f"{metric} undefined on the comparison rows")
    gain = candidate_value - champion_value
    detail = f"{metric} {candidate_value:.4f} vs champion {champion_value:.4f}"
    if batch_drifted:
        return Check(name="max_unexplained_gain", value=gain, threshold=thresholds.max_unexplained_gain, comparison="<=", passed=True,
                     detail=detail + "; explained: the drift gate found the batch drifted, so the champion is out of date")
    passed = gain <= thresholds.max_unexplained_gain
    if not passed:
        detail += ("; a gain this large with the same data is usually a leak. Review the candidate; if the gain is "
                   "real (new features, a better estimator), re-run with a higher max_unexplained_gain")
    return Check(name="max_unexplained_gain", value=gain, threshold=thresholds.max_unexplained_gain, comparison="<=", passed=passed, detail=detail)


def comparison_rows(x_test: pd.DataFrame, y_test: pd.Series, champion_split: Any) -> tuple[pd.DataFrame, pd.Series, str]:
    """The test rows the champion never trained on: its own split rule, applied to today's test rows.

    Returns the rows and a note for the record. A champion without a recorded rule (deployed
    before stable splits) is compared on every test row, and the note says so.
    """
    frame = x_test.assign(**{"\x00label": y_test.to_numpy()})
    rule = SplitRule.from_json(champion_split)
    held_out = held_out_by(x_test, rule)
    if held_out is None:
        return x_test, y_test, ("the champion records no split rule it can be checked against (deployed before "
                                "stable splits): compared on every test row")
    kept = frame[held_out]
    return (kept.drop(columns=["\x00label"]), kept["\x00label"],
            f"compared on the {int(held_out.sum())} of {len(x_test)} test rows the champion's split rule also held out")


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
    return Check(name="max_prediction_psi", value=drift["psi"], threshold=thresholds.max_prediction_psi, comparison="<=", passed=passed, detail=detail)


MIN_COMPARISON_ROWS = 20


def evaluate_model(
    *,
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
    drift_html_path: str = "",
    feature_metadata_path: str = "",
) -> GateDecision:
    """The model gate: absolute thresholds and leakage on the test split, then the champion and
    the candidate compared on the test rows the champion never trained on.

    Args:
        model_path: the candidate ``Pipeline`` (joblib, from train-model).
        test_path: the test split (Parquet, raw rows).
        training_report_path: train-model's report (overfit gap, CV, MLflow run).
        target: the label column.
        thresholds: the gate's typed thresholds.
        registry_uri, model_name: where the champion is; it is loaded verified (signature, SHA-256s).
        decision_out: ``gate_decision.json``.
        report_out: the Markdown gate report.
        drift_report_path: the drift gate's record (its retrain_only hold).
        feature_metadata_path: engineer-features' metadata (single-feature scores for leakage).
        drift_html_path: the drift report page, put on the MLflow run with the gate report.

    Returns:
        The decision; ``decision.decision`` is ``deploy`` or ``block``.
    """
    x_test, y_test = split_features_target(read_parquet(test_path), target)
    training = json.loads(Path(training_report_path).read_text())
    candidate_model = fitted_model(joblib.load(model_path), model_path)
    candidate = score_model(candidate_model, x_test, y_test)
    checks = absolute_checks(candidate, float(training["overfit_gap"]), thresholds)
    metadata = json.loads(Path(feature_metadata_path).read_text()) if feature_metadata_path else {}
    if thresholds.max_single_feature_score > 0 and metadata.get("single_feature_scores"):
        checks.append(leakage_check(metadata["single_feature_scores"], len(candidate.labels), thresholds))

    registry = ModelRegistry(registry_uri, model_name)
    current = registry.champion()
    champion_scores, champion_info, problem, champion_reference = None, None, "", None
    compared_candidate = candidate
    if current is not None:
        champion_info = {"version": current.version, "pointer_token": current.token, "metrics": None}
        try:
            champion_model, manifest, contents = registry.load_verified_model(current.version, current.manifest_sha256)
            if REFERENCE_PROFILE_FILE in contents:
                champion_reference = json.loads(contents[REFERENCE_PROFILE_FILE]).get("predictions")
            champion_split = (json.loads(contents[FEATURE_METADATA_FILE]).get("split")
                              if FEATURE_METADATA_FILE in contents else None)
        except RegistryError as exc:
            raise RegistryError(f"the champion could not be loaded for comparison, so the gate fails closed: {exc}") from exc
        x_compare, y_compare, note = comparison_rows(x_test, y_test, champion_split)
        champion_info["comparison"] = {"rows": len(x_compare), "test_rows": len(x_test), "note": note}
        if len(x_compare) < MIN_COMPARISON_ROWS or y_compare.nunique() < 2:
            problem = (f"only {len(x_compare)} test rows (of {len(x_test)}) were held out by champion "
                       f"{current.version}'s split as well, too few to compare the two models fairly; provide more rows")
        else:
            try:
                champion_scores = score_model(champion_model, x_compare, y_compare)
                champion_info["metrics"] = champion_scores.headline()
                compared_candidate = (candidate if len(x_compare) == len(x_test)
                                      else score_model(candidate_model, x_compare, y_compare))
            except Exception as exc:  # e.g. the schema changed since the champion was trained
                problem = f"champion {current.version} could not be scored on this test split: {str(exc)[:500]}"
    if problem:
        checks.append(Check(name=f"not_worse_than_champion ({thresholds.comparison_metric})", value=None, threshold=None, comparison=">=", passed=False, detail=problem))
    else:
        checks.append(champion_check(compared_candidate, champion_scores, current.version if current else None,
                                     thresholds))
    predictions = None
    if champion_scores is not None:
        predictions = prediction_drift(compared_candidate, champion_scores, champion_reference)
        if thresholds.max_prediction_psi > 0:
            checks.append(prediction_psi_check(compared_candidate, champion_scores, predictions, thresholds))
    drift = json.loads(Path(drift_report_path).read_text()) if drift_report_path else None
    if champion_scores is not None and thresholds.max_unexplained_gain > 0:
        checks.append(unexplained_gain_check(compared_candidate, champion_scores, thresholds,
                                             batch_drifted=bool((drift or {}).get("drifted"))))
    if drift is not None and not drift["deploy_allowed"]:
        checks.append(Check(name=ModelGate.DRIFT_HOLD_CHECK, value=None, threshold=None, comparison="==", passed=False,
                            detail="the batch drifted and drift_action=retrain_only: the candidate is trained and evaluated, "
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
        drift=drift_record(drift) if drift is not None else None,
    )
    Path(decision_out).write_text(json.dumps(decision.to_json(), indent=2))
    Path(report_out).write_text(gate_report_markdown(decision))
    # The whole gate on the MLflow run (thresholds, every check's value and verdict, a blocked
    # run's outcome, the reports). A courtesy: MLflow being down never changes the decision.
    status = tracking.record_gate(training["tracking_uri"], training["mlflow_run_id"], decision.to_json(), {
        "gate_report.md": report_out, "gate_decision.json": decision_out, "drift_report.html": drift_html_path})
    print(f"MLflow gate record: {status}")
    return decision


def drift_record(drift: dict[str, Any]) -> dict[str, Any]:
    """What the registry keeps of the drift gate: its decision, whether the batch drifted, under which
    action, the reasons and warnings, and which features moved (a deploy over a drift warning leaves
    this trace in gate_decision.json, the manifest and `history`)."""
    report = drift.get("report") or {}
    return {
        "decision": drift.get("decision"), "drift_action": drift.get("drift_action"),
        "drifted": bool(drift.get("drifted")), "deploy_allowed": drift.get("deploy_allowed", True),
        "champion": drift.get("champion"),
        "reasons": list(drift.get("reasons") or []), "warnings": list(drift.get("warnings") or []),
        "drifted_share": report.get("drifted_share"), "max_psi": report.get("max_psi"),
        "drifted_features": [f["feature"] for f in report.get("features", []) if f["drifted"]],
    }


def gate_report_markdown(decision: GateDecision) -> str:
    """The model gate for the KFP UI (report_text: code spans, tables, 4 significant digits);
    details that carry names from the data are escaped."""
    from gated_training.report_text import code, number, table, value, verdict

    md = markdown_text
    lines = [f"# Model gate: {'**DEPLOY**' if decision.decision == DEPLOY else '**BLOCKED**'}", ""]
    if decision.reasons:
        lines += ["## Blocked because", ""] + [f"- {md(reason)}" for reason in decision.reasons] + [""]
    rows = [[code(check.name), value(check.value),
             "—" if check.threshold is None else f"{md(check.comparison)} {number(check.threshold)}",
             verdict(check.passed), md(check.detail) if check.detail else "—"] for check in decision.checks]
    lines += ["## Checks", ""] + table(["check", "value", "threshold", "verdict", "detail"], rows)
    if decision.drift and (decision.drift["drifted"] or decision.drift["warnings"]):
        drift = decision.drift
        lines += ["## Drift", "", f"- the batch drifted under {code(drift['drift_action'], in_table=False)}; features: "
                  + (", ".join(code(f, in_table=False) for f in drift["drifted_features"]) or "—")
                  if drift["drifted"] else f"- the batch did not drift (action {code(drift['drift_action'], in_table=False)})"]
        lines += [f"- {md(text)}" for text in [*drift["reasons"], *drift["warnings"]]] + [""]
    champion = decision.champion
    candidate = decision.candidate["metrics"] or {}
    champion_metrics = (champion or {}).get("metrics") or {}
    headers = ["metric", "candidate"] + ([f"champion {code(champion['version'])}"] if champion else [])
    metric_rows = [[code(name), number(score)] + ([value(champion_metrics.get(name))] if champion else [])
                   for name, score in candidate.items()]
    lines += ["## Metrics on the test split", ""] + table(headers, metric_rows)
    if not champion:
        lines += ["No champion yet.", ""]
    elif champion.get("comparison"):
        lines += [md(champion["comparison"]["note"]), ""]
    drift = decision.prediction_drift
    if drift:
        lines += ["## Predictions against the champion", "",
                  f"- PSI between the candidate's and the champion's predictions: {number(drift['psi'])}",
                  f"- agreement: {number(100 * drift['agreement'])}%",
                  f"- candidate: {value(drift['candidate_distribution'])}",
                  f"- champion: {value(drift['champion_distribution'])}"]
        if drift["champion_vs_its_reference_psi"] is not None:
            lines.append(f"- champion against its own test split at deploy time: PSI "
                         f"{number(drift['champion_vs_its_reference_psi'])}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"



"""evaluate-model, the model gate: minimum evidence, absolute thresholds, the prior predictor, leakage,
then the champion re-scored on the test rows it never trained on, compared with paired statistics.

This module assembles one :class:`gated_training.gate.GateContext` (every model's answers on the same
rows, as label codes) and runs the checks of ``gated_training.gate`` over it; the decision rules and
each check live there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import joblib
import numpy as np
import pandas as pd

from gated_training import logs
from gated_training.config import ENGINES, GateThresholds, require_choice
from gated_training.data import SplitRule, held_out_by, json_safe, label_key, read_parquet, split_features_target
from gated_training.decisions import ModelGate
from gated_training.drift import champion_features, prediction_counts
from gated_training.errors import RegistryError
from gated_training.registry import FEATURE_METADATA_FILE, REFERENCE_PROFILE_FILE, ModelRegistry, fitted_model
from gated_training.reports import markdown_text
from gated_training.tracking import runs as tracking

if TYPE_CHECKING:
    from gated_training.gate import Answers, Check, GateContext

# The gate (scikit-learn's metrics, SciPy's statistics: 1.5 s of imports) is imported where it is used, after the
# test split is read: the step's start-up before its first read is the executor, pandas and this package.

DEPLOY, BLOCK = ModelGate.DEPLOY, ModelGate.BLOCK


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    decision: str  # DEPLOY or BLOCK
    reasons: list[str]  # the checks that block, one line each
    checks: list[Check]
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    thresholds: dict[str, Any]
    scores: dict[str, Any] = field(default_factory=dict)  # confusion matrices, ROC: for the UI
    prediction_drift: dict[str, Any] | None = None  # candidate vs champion predictions on the same test split
    drift: dict[str, Any] | None = None  # the drift gate's decision and warnings (drift_record), kept with the version
    warnings: list[str] = field(default_factory=list)  # checks that failed at warning severity
    baseline: dict[str, Any] | None = None  # the prior predictor on the same test rows

    def to_json(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def _answers(y: pd.Series, predicted: np.ndarray, proba: np.ndarray | None, classes: Any, labels: list[Any]) -> Answers:
    from gated_training.gate import Answers, aligned_proba, label_codes, score_predictions

    scores = score_predictions(y, predicted, proba, np.asarray(classes))

    return Answers(
        codes=label_codes(predicted, labels), proba=aligned_proba(proba, list(classes), labels), scores=scores
    )


def _subset(
    y: pd.Series, predicted: np.ndarray, proba: np.ndarray | None, classes: Any, labels: list[Any], rows: np.ndarray
) -> Answers:
    return _answers(
        y.iloc[rows].reset_index(drop=True), predicted[rows], None if proba is None else proba[rows], classes, labels
    )


class TestSplit(Protocol):
    """The test split as the gate reads it, wherever its rows are (pandas: this process; Spark:
    ``spark.evaluation.SparkTestSplit``)."""

    @property
    def y(self) -> pd.Series: ...

    @property
    def columns(self) -> list[str]: ...

    def frame(self, names: list[str]) -> pd.DataFrame: ...

    def held_out(self, rule: SplitRule | None) -> np.ndarray | None: ...

    def score(self, model: Any, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class PandasTestSplit:
    x: pd.DataFrame
    y: pd.Series

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.x.columns]

    def frame(self, names: list[str]) -> pd.DataFrame:
        return self.x  # already here: every column

    def held_out(self, rule: SplitRule | None) -> np.ndarray | None:
        return held_out_by(self.x, rule)

    def score(self, model: Any, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        from gated_training.gate import predict_labels_and_proba

        return predict_labels_and_proba(model, self.x if rows is None else self.x.iloc[rows])

    def close(self) -> None:
        pass


def comparison_rows(split: TestSplit, champion_split: Any) -> tuple[np.ndarray, str]:
    """Positions of the test rows the champion never trained on (its own split rule on today's rows),
    and a note for the record. A champion without a recorded rule is compared on every test row."""
    rows = len(split.y)
    held_out = split.held_out(SplitRule.from_json(champion_split))
    if held_out is None:
        return np.arange(rows), (
            "the champion records no split rule it can be checked against (deployed "
            "before stable splits): compared on every test row"
        )
    return np.flatnonzero(held_out), (
        f"compared on the {int(held_out.sum())} of {rows} test rows the champion's split rule also held out"
    )


def gate_columns(thresholds: GateThresholds, segments: dict[str, Any] | None) -> list[str]:
    """The test columns the gate itself reads: the slices and the champion's segment features."""
    named = [c.strip() for c in thresholds.slice_by.split(",") if c.strip()]
    features = segments.get("features") if isinstance(segments, dict) else None
    return [*named, *(map(str, features) if isinstance(features, dict) else [])]


def prediction_drift(ctx: GateContext) -> dict[str, Any] | None:
    """How differently the two models predict the same rows: PSI of their label distributions and agreement."""
    from gated_training.drift import prediction_psi

    view = ctx.champion
    if view is None:
        return None
    labels = np.asarray(ctx.labels, dtype=object)
    candidate, champion = labels[view.candidate.codes], labels[view.champion.codes]
    champion_counts = prediction_counts(champion)
    return {
        "rows": int(len(view.y)),
        "candidate_distribution": prediction_counts(candidate),
        "champion_distribution": champion_counts,
        "psi": prediction_psi(champion_counts, candidate),
        "agreement": float(np.mean(view.candidate.codes == view.champion.codes)) if len(view.y) else 1.0,
        # The champion on this split against the champion on its own test split at deploy time.
        "champion_vs_its_reference_psi": prediction_psi(view.reference_predictions, champion)
        if view.reference_predictions
        else None,
    }


def _too_few(ctx_thresholds: GateThresholds, y_codes: np.ndarray, classes: int, trained: list[int]) -> str | None:
    counts = np.bincount(y_codes, minlength=classes)
    smallest = int(counts[trained].min()) if trained and len(y_codes) else 0
    if len(y_codes) < ctx_thresholds.min_test_rows or smallest < ctx_thresholds.min_test_rows_per_class:
        return (
            f"{len(y_codes)} rows, {smallest} of the rarest class; a comparison needs at least "
            f"{ctx_thresholds.min_test_rows} rows and {ctx_thresholds.min_test_rows_per_class} of each class"
        )
    return None


def build_context(
    *,
    model: Any,
    split: TestSplit,
    thresholds: GateThresholds,
    training: dict[str, Any],
    metadata: dict[str, Any],
    drift: dict[str, Any] | None,
    registry: ModelRegistry,
) -> GateContext:
    """Every model's answers on the same rows: the candidate and the prior predictor on the test split,
    and the champion (loaded verified) with the candidate on the rows the champion never trained on."""
    from gated_training.gate import ChampionView, GateContext, label_codes, label_order, prior_predictions

    y_test = split.y
    predicted, proba = split.score(model)
    classes = list(model.classes_)
    train_counts = {label_key(k): int(v) for k, v in ((metadata.get("class_counts") or {}).get("train") or {}).items()}
    current = registry.champion()
    champion_model = champion_contents = None
    if current is not None:
        try:
            champion_model, _, champion_contents = registry.load_verified_model(
                current.version, current.manifest_sha256
            )
        except RegistryError as exc:
            raise RegistryError(
                f"the champion could not be loaded for comparison, so the gate fails closed: {exc}"
            ) from exc
    labels = label_order(
        classes, pd.unique(y_test), list(champion_model.classes_) if champion_model is not None else []
    )
    y_codes = label_codes(y_test, labels)
    candidate = _answers(y_test, predicted, proba, classes, labels)
    base_predicted, base_proba = prior_predictions(
        train_counts or prediction_counts(y_test), np.asarray(classes), len(y_test)
    )
    baseline = _answers(y_test, base_predicted, base_proba, classes, labels)
    trained = sorted(set(label_codes(classes, labels).tolist()))
    contents = champion_contents or {}
    profile = json.loads(contents[REFERENCE_PROFILE_FILE]) if REFERENCE_PROFILE_FILE in contents else {}
    segments = (profile.get("labels") or {}).get("definitions")
    context = dict(
        thresholds=thresholds,
        labels=labels,
        y=y_codes,
        candidate=candidate,
        baseline=baseline,
        features=split.frame(gate_columns(thresholds, segments)),
        feature_columns=tuple(split.columns),
        training=training,
        metadata=metadata,
        drift=drift,
        train_class_counts=train_counts,
        trained=trained,
    )
    if current is None or champion_model is None:  # the model is loaded exactly when there is a champion
        return GateContext(**context)
    champion_split = (
        json.loads(contents[FEATURE_METADATA_FILE]).get("split") if FEATURE_METADATA_FILE in contents else None
    )
    rows, note = comparison_rows(split, champion_split)
    too_few = _too_few(thresholds, y_codes[rows], len(labels), trained)
    if too_few:
        return GateContext(
            **context,
            champion_version=current.version,
            champion_problem=(
                f"only {len(rows)} test rows (of {len(y_test)}) were held out by champion {current.version}'s split as "
                f"well ({too_few}): too few to compare the two models fairly; provide more rows"
            ),
        )
    contract = champion_features(contents.get(FEATURE_METADATA_FILE))
    absent = [column for column in contract or [] if column not in split.columns]
    if absent:  # said in these words on both engines, not as pandas' or Spark's failure to select them
        return GateContext(
            **context,
            champion_version=current.version,
            champion_problem=(
                f"champion {current.version} could not be scored on this test split: it was trained on column(s) "
                f"{', '.join(absent)}, which this split does not have"
            ),
        )
    try:
        champion_predicted, champion_proba = split.score(champion_model, rows)
    except Exception as exc:  # e.g. a column's type changed since the champion was trained
        return GateContext(
            **context,
            champion_version=current.version,
            champion_problem=f"champion {current.version} could not be scored on this test split: {str(exc)[:500]}",
        )
    y_rows = y_test.iloc[rows].reset_index(drop=True)
    view = ChampionView(
        version=current.version,
        rows=rows,
        y=y_codes[rows],
        note=note,
        candidate=_subset(y_test, predicted, proba, classes, labels, rows),
        champion=_answers(y_rows, champion_predicted, champion_proba, list(champion_model.classes_), labels),
        reference_predictions=profile.get("predictions"),
        segments=segments,
    )
    return GateContext(**context, champion=view, champion_version=current.version)


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
    engine: str = "pandas",
    test_uri: str = "",
) -> GateDecision:
    """The model gate: minimum evidence, absolute thresholds, the prior predictor and leakage on the test
    split, then the champion and the candidate compared on the test rows the champion never trained on.

    Args:
        model_path: the candidate ``Pipeline`` (joblib, from train-model).
        test_path: the test split (Parquet, raw rows).
        training_report_path: train-model's report (overfit gap, CV, pair leakage, MLflow run).
        target: the label column.
        thresholds: the gate's typed thresholds and rules.
        registry_uri, model_name: where the champion is; it is loaded verified (signature, SHA-256s).
        decision_out: ``gate_decision.json``.
        report_out: the Markdown gate report.
        drift_report_path: the drift gate's record (its retrain_only hold).
        feature_metadata_path: engineer-features' metadata (single-feature scores, class counts).
        drift_html_path: the drift report page, put on the MLflow run with the gate report.
        engine: ``pandas``, or ``spark``: the test split stays in Spark and every model scores it in Spark's
            workers; the driver holds each row's label and answers (``spark.evaluation``), and the gate's checks
            run on them unchanged. On a cluster the whole step runs in a SparkApplication's driver.
        test_uri: where the test split is stored (the artifact's URI), which a SparkApplication reads.

    Returns:
        The decision; ``decision.decision`` is ``deploy`` or ``block``.
    """
    require_choice("engine", engine, ENGINES)
    if engine == "spark":
        from gated_training import spark

        outcome = spark.remote.run_on_cluster(
            "evaluate-model",
            {
                "test_path": test_uri or test_path,
                "target": target,
                "thresholds": asdict(thresholds),
                "registry_uri": registry_uri,
                "model_name": model_name,
            },
            spark.StepFiles(
                inputs={
                    "model_path": model_path,
                    "training_report_path": training_report_path,
                    "drift_report_path": drift_report_path,  # the optional ones are sent when given
                    "drift_html_path": drift_html_path,
                    "feature_metadata_path": feature_metadata_path,
                },
                files={"decision_out": decision_out, "report_out": report_out},
            ),
            record=decision_out,
            build=decision_from_record,
        )
        if outcome is not None:  # on the cluster: the whole step runs in a SparkApplication's driver
            return outcome
    training = json.loads(Path(training_report_path).read_text())
    metadata = json.loads(Path(feature_metadata_path).read_text()) if feature_metadata_path else {}
    drift = json.loads(Path(drift_report_path).read_text()) if drift_report_path else None
    registry = ModelRegistry(registry_uri, model_name)
    split: TestSplit
    if engine == "spark":
        from gated_training import spark

        split = spark.SparkTestSplit(spark.spark_session(), test_path, target)
    else:
        split = PandasTestSplit(*split_features_target(read_parquet(test_path), target))
    try:
        # Unpickled after the read: it imports scikit-learn's estimators, which nothing before the read uses.
        model = fitted_model(joblib.load(model_path), model_path)
        context = build_context(
            model=model,
            split=split,
            thresholds=thresholds,
            training=training,
            metadata=metadata,
            drift=drift,
            registry=registry,
        )
    finally:
        split.close()
    from gated_training.gate import decide, run_checks

    checks = run_checks(context)
    verdict = decide(checks)
    decision = GateDecision(
        decision=verdict.decision,
        reasons=verdict.reasons,
        warnings=verdict.warnings,
        checks=checks,
        candidate=candidate_record(context, training),
        baseline=baseline_record(context),
        champion=champion_record(context, registry),
        thresholds=asdict(thresholds),
        scores={
            "labels": context.candidate.scores.labels,
            "confusion_matrix": context.candidate.scores.confusion_matrix,
            "roc_curve": context.candidate.scores.roc_curve,
        },
        prediction_drift=prediction_drift(context),
        drift=drift_record(drift) if drift is not None else None,
    )
    Path(decision_out).write_text(json.dumps(decision.to_json(), indent=2))
    Path(report_out).write_text(gate_report_markdown(decision.to_json()))
    # The whole gate on the MLflow run (thresholds, every check's value and verdict, a blocked
    # run's outcome, the reports). A courtesy: MLflow being down never changes the decision.
    status = tracking.log_gate(
        training["tracking_uri"],
        training["mlflow_run_id"],
        decision.to_json(),
        {"gate_report.md": report_out, "gate_decision.json": decision_out, "drift_report.html": drift_html_path},
    )
    logs.event("mlflow.gate_record", f"MLflow gate record: {status}", status=status, decision=decision.decision)
    return decision


def _object(name: str, value: Any, optional: bool = True) -> Any:
    if (value is None and optional) or isinstance(value, dict):
        return value
    raise ValueError(f"{name}: not an object")


def check_from_record(record: Any) -> Check:
    """One check of a gate decision's record, with exactly a check's fields and their types."""
    from gated_training import spark
    from gated_training.gate import Check

    expected = {f.name for f in fields(Check)}
    if not isinstance(record, dict) or set(record) != expected:
        raise ValueError(f"a check with fields other than {sorted(expected)}")
    if not isinstance(record["name"], str) or not isinstance(record["detail"], str):
        raise ValueError("a check's name and detail are text")
    if record["comparison"] not in (">=", "<=", ">", "==") or record["severity"] not in ("critical", "warning"):
        raise ValueError(f"check {record['name']!r}: comparison or severity of an unknown kind")
    if not isinstance(record["passed"], bool):
        raise ValueError(f"check {record['name']!r}: passed is not true or false")
    return Check(
        name=record["name"],
        value=spark.remote.finite_number(f"{record['name']}.value", record["value"], optional=True),
        threshold=spark.remote.finite_number(f"{record['name']}.threshold", record["threshold"], optional=True),
        comparison=record["comparison"],
        passed=record["passed"],
        detail=record["detail"],
        severity=record["severity"],
        evidence=_object(f"{record['name']}.evidence", record["evidence"]),
    )


def decision_from_record(record: dict[str, Any]) -> GateDecision:
    """The gate decision a SparkApplication's driver wrote, built only when it has a decision's shape and its
    verdict follows from its own checks: a record saying deploy over a blocking check is refused."""
    from gated_training import spark
    from gated_training.gate import decide

    expected = {f.name for f in fields(GateDecision)}
    if set(record) != expected:
        raise ValueError(f"fields {sorted(set(record) ^ expected)} differ from a gate decision's")
    if not isinstance(record["checks"], list) or not record["checks"]:
        raise ValueError("checks: not a list of checks")
    checks = [check_from_record(item) for item in record["checks"]]
    verdict = decide(checks)
    for name in ("reasons", "warnings"):
        if not isinstance(record[name], list) or not all(isinstance(line, str) for line in record[name]):
            raise ValueError(f"{name}: not a list of text")
    if (record["decision"], len(record["reasons"]), len(record["warnings"])) != (
        verdict.decision,
        len(verdict.reasons),
        len(verdict.warnings),
    ):
        raise ValueError(
            f"decision {record['decision']!r} with {len(record['reasons'])} reason(s) does not follow from its "
            f"checks ({verdict.decision}, {len(verdict.reasons)} blocking)"
        )
    candidate = _object("candidate", record["candidate"], optional=False)
    spark.remote.named_numbers("candidate.metrics", candidate.get("metrics"))
    spark.remote.finite_number("candidate.overfit_gap", candidate.get("overfit_gap"))
    champion = _object("champion", record["champion"])
    if champion is not None and champion.get("metrics") is not None:
        spark.remote.named_numbers("champion.metrics", champion["metrics"])
    drift_of_predictions = _object("prediction_drift", record["prediction_drift"])
    if drift_of_predictions is not None:
        spark.remote.finite_number("prediction_drift.psi", drift_of_predictions.get("psi"))
        spark.remote.finite_number("prediction_drift.agreement", drift_of_predictions.get("agreement"))
    scores = _object("scores", record["scores"], optional=False)
    matrix = scores.get("confusion_matrix")
    if (
        not isinstance(scores.get("labels"), list)
        or not isinstance(matrix, list)
        or len(matrix) != len(scores["labels"])
        or not all(
            isinstance(row, list)
            and len(row) == len(matrix)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in row)
            for row in matrix
        )
    ):
        raise ValueError("scores: not labels with a square confusion matrix of counts")
    roc = _object("scores.roc_curve", scores.get("roc_curve"))
    if roc is not None:
        for key in ("fpr", "tpr", "thresholds"):
            if not isinstance(roc.get(key), list):
                raise ValueError(f"scores.roc_curve.{key}: not a list")
            for number in roc[key]:
                spark.remote.finite_number(f"scores.roc_curve.{key}", number)
    return GateDecision(
        decision=verdict.decision,
        reasons=record["reasons"],
        warnings=record["warnings"],
        checks=checks,
        candidate=candidate,
        champion=champion,
        thresholds=_object("thresholds", record["thresholds"], optional=False),
        scores=scores,
        prediction_drift=drift_of_predictions,
        drift=_object("drift", record["drift"]),
        baseline=_object("baseline", record["baseline"]),
    )


def candidate_record(context: GateContext, training: dict[str, Any]) -> dict[str, Any]:
    from gated_training.stats import expected_calibration_error

    candidate = context.candidate
    calibration = None
    if candidate.proba is not None and len(context.y):
        calibration = {
            "brier": candidate.scores.brier,
            "expected_calibration_error": expected_calibration_error(context.y, candidate.proba),
            "rows": int(len(context.y)),
        }
    return {
        "metrics": candidate.scores.headline(),
        "cv_accuracy_mean": training["cv_accuracy_mean"],
        "cv_accuracy_std": training["cv_accuracy_std"],
        "overfit_gap": training["overfit_gap"],
        "train_accuracy": training["train"]["accuracy"],
        "mlflow_run_id": training["mlflow_run_id"],
        "test_rows": int(len(context.y)),
        "calibration": calibration,
    }


def baseline_record(context: GateContext) -> dict[str, Any]:
    majority = context.labels[int(context.baseline.codes[0])] if len(context.baseline.codes) else None
    return {
        "predictor": "prior",
        "predicts": majority,
        "metrics": context.baseline.scores.headline(),
        "description": "always the training split's most common class, with the training class shares as probabilities",
    }


def champion_record(context: GateContext, registry: ModelRegistry) -> dict[str, Any] | None:
    if context.champion_version is None:
        return None
    current = registry.champion()
    record: dict[str, Any] = {
        "version": context.champion_version,
        "pointer_token": current.token if current else None,
        "metrics": None,
    }
    view = context.champion
    if view is not None:
        record["metrics"] = view.champion.scores.headline()
        record["candidate_metrics"] = view.candidate.scores.headline()  # the candidate on the same rows
        record["comparison"] = {"rows": int(len(view.rows)), "test_rows": int(len(context.y)), "note": view.note}
    else:
        record["comparison"] = {"rows": 0, "test_rows": int(len(context.y)), "note": context.champion_problem}
    return record


def drift_record(drift: dict[str, Any]) -> dict[str, Any]:
    """What the registry keeps of the drift gate: its decision, whether the batch drifted, under which
    action, the reasons and warnings, and which features moved (a deploy over a drift warning leaves
    this trace in gate_decision.json, the manifest and `history`)."""
    report = drift.get("report") or {}
    return {
        "decision": drift.get("decision"),
        "drift_action": drift.get("drift_action"),
        "drifted": bool(drift.get("drifted")),
        "deploy_allowed": drift.get("deploy_allowed", True),
        "champion": drift.get("champion"),
        "reasons": list(drift.get("reasons") or []),
        "warnings": list(drift.get("warnings") or []),
        "drifted_share": report.get("drifted_share"),
        "max_psi": report.get("max_psi"),
        "drifted_features": [f["feature"] for f in report.get("features", []) if f["drifted"]],
    }


def _evidence_text(check: dict[str, Any]) -> str:
    from gated_training.reports import number

    evidence = check.get("evidence") or {}
    parts = []
    if evidence.get("rows") is not None:
        parts.append(f"{evidence['rows']} rows")
    if evidence.get("interval"):
        low, high = evidence["interval"]
        parts.append(f"{number(100 * evidence.get('level', 0.95))}% [{number(low)}, {number(high)}]")
    if evidence.get("p_value") is not None:
        parts.append(f"p {number(evidence['p_value'])}")
    return markdown_text("; ".join(parts)) if parts else "—"


def gate_report_markdown(decision: dict[str, Any]) -> str:
    """The model gate for the KFP UI (report_text: code spans, tables, 4 significant digits): the
    verdict and what blocked it first, then every check with its evidence, the metrics beside the
    prior predictor and the champion, the paired comparison and the slices. Text from the data is escaped."""
    from gated_training.reports import code, number, table, value, verdict

    md = markdown_text
    lines = [f"# Model gate: {'**DEPLOY**' if decision['decision'] == DEPLOY else '**BLOCKED**'}", ""]
    if decision["reasons"]:
        lines += ["## Blocked because", ""] + [f"- {md(reason)}" for reason in decision["reasons"]] + [""]
    if decision.get("warnings"):
        lines += ["## Warnings (not blocking)", ""] + [f"- {md(w)}" for w in decision["warnings"]] + [""]
    rows = [
        [
            code(check["name"]),
            value(check["value"]),
            "—" if check["threshold"] is None else f"{md(check['comparison'])} {number(check['threshold'])}",
            verdict(check["passed"])
            if check.get("severity", "critical") == "critical" or check["passed"]
            else "warning",
            _evidence_text(check),
            md(check["detail"]) if check["detail"] else "—",
        ]
        for check in decision["checks"]
    ]
    lines += ["## Checks", ""] + table(["check", "value", "threshold", "verdict", "evidence", "detail"], rows)
    drift = decision.get("drift")
    if drift and (drift["drifted"] or drift["warnings"]):
        lines += [
            "## Drift",
            "",
            f"- the batch drifted under {code(drift['drift_action'], in_table=False)}; features: "
            + (", ".join(code(f, in_table=False) for f in drift["drifted_features"]) or "—")
            if drift["drifted"]
            else f"- the batch did not drift (action {code(drift['drift_action'], in_table=False)})",
        ]
        lines += [f"- {md(text)}" for text in [*drift["reasons"], *drift["warnings"]]] + [""]
    champion = decision.get("champion")
    baseline = decision.get("baseline") or {}
    candidate = decision["candidate"]["metrics"] or {}
    baseline_metrics = baseline.get("metrics") or {}
    champion_metrics = (champion or {}).get("metrics") or {}
    headers = ["metric", "candidate", f"prior predictor (always {code(baseline.get('predicts'))})"] + (
        [f"champion {code(champion['version'])}"] if champion else []
    )
    metric_rows = [
        [code(name), number(score), value(baseline_metrics.get(name))]
        + ([value(champion_metrics.get(name))] if champion else [])
        for name, score in candidate.items()
    ]
    lines += [f"## Metrics on the test split ({decision['candidate'].get('test_rows', '—')} rows)", ""]
    lines += table(headers, metric_rows)
    if not champion:
        lines += ["No champion yet.", ""]
    elif champion.get("comparison"):
        lines += [md(champion["comparison"]["note"]), ""]
        if champion.get("candidate_metrics") and champion["comparison"]["rows"] != champion["comparison"]["test_rows"]:
            lines += ["Champion column and the comparison: the rows the champion never trained on.", ""]
    compared = next(
        (c for c in decision["checks"] if c["name"].startswith("not_worse_than_champion") and c.get("evidence")), None
    )
    if compared:
        evidence = compared["evidence"]
        lines += [
            "## Candidate against the champion (paired, same rows)",
            "",
            f"- rows: {evidence['rows']}; difference {number(evidence['estimate'])}, "
            f"{number(100 * evidence['level'])}% interval [{number(evidence['interval'][0])}, "
            f"{number(evidence['interval'][1])}] ({md(evidence['method'])})",
            f"- test: {md(evidence['test'])}, p {number(evidence['p_value'])}",
        ]
        if evidence.get("wins") is not None:
            lines.append(
                f"- rows only the candidate gets right: {evidence['wins']}; only the champion: {evidence['losses']}"
            )
        if evidence.get("minimum_detectable") is not None:
            lines.append(
                f"- smallest difference these rows detect (80% power): {number(evidence['minimum_detectable'])}"
            )
        lines += [f"- rule: {code(evidence['rule'], in_table=False)}; verdict: **{md(evidence['verdict'])}**", ""]
    sliced = next(
        (
            c
            for c in decision["checks"]
            if c["name"] in ("slices_not_worse_than_champion", "min_slice_score") and c.get("evidence")
        ),
        None,
    )
    if sliced:
        slices = sliced["evidence"]["slices"]
        slice_rows = [
            [
                code(f"{s['column']}={s['level']}"),
                str(s["rows"]),
                value(s["candidate"]),
                value(s["champion"]),
                value(s["difference"]),
                value(s["adjusted_p_value"]),
                "**worse**" if s["worse"] else ("below floor" if not s["floor_passed"] else "ok"),
            ]
            for s in slices
        ]
        lines += ["## Slices", ""] + table(
            ["slice", "rows", "candidate", "champion", "difference", "Holm p", "verdict"], slice_rows
        )
    predictions = decision.get("prediction_drift")
    if predictions:
        lines += [
            "## Predictions against the champion",
            "",
            f"- PSI between the candidate's and the champion's predictions: {number(predictions['psi'])}",
            f"- agreement: {number(100 * predictions['agreement'])}%",
            f"- candidate: {value(predictions['candidate_distribution'])}",
            f"- champion: {value(predictions['champion_distribution'])}",
        ]
        if predictions["champion_vs_its_reference_psi"] is not None:
            lines.append(
                f"- champion against its own test split at deploy time: PSI "
                f"{number(predictions['champion_vs_its_reference_psi'])}"
            )
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"

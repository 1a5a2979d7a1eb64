from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    test_data: Input[Dataset],
    training_report: Input[Artifact],
    drift_report: Input[Artifact],
    feature_metadata: Input[Artifact],
    validation_report: Input[Artifact],
    drift_html: Input[HTML],
    target_column: str,
    gate: dict,
    registry_uri: str,
    model_name: str,
    notify_webhook_url: str,
    retrain_ticket: str,
    engine: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    gate_report: Output[Markdown],
    gate_decision: Output[Artifact],
    run_summary: Output[Artifact],
    summary: Output[Markdown],
) -> str:
    """Model gate: minimum evidence, absolute thresholds, the prior predictor, leakage, the champion re-scored on
    the same test rows with paired statistics, slices, segment flips and the drift gate's retrain_only hold.
    Returns "deploy" or "block"; a blocked run's summary (each failed check with its value, threshold and
    evidence) is written here and posted to the webhook."""
    from gated_training.config import group_settings
    from gated_training.decisions import ModelGate
    from gated_training.kubeflow import recorded_step
    from gated_training.reports import RunRecords, record_gate
    from gated_training.steps.evaluate_model import evaluate_model
    from gated_training.tracking import outcome_failed_on_error

    with (
        recorded_step(
            notify_webhook_url=notify_webhook_url,
            retrain_ticket=retrain_ticket,
            model_name=model_name,
            artifact_uri=run_summary.uri,
        ) as step,
        outcome_failed_on_error(training_report_path=training_report.path),
    ):
        decision = evaluate_model(
            model_path=model.path,
            test_path=test_data.path,
            training_report_path=training_report.path,
            target=target_column,
            thresholds=group_settings(group="gate", values=gate),
            registry_uri=registry_uri,
            model_name=model_name,
            decision_out=gate_decision.path,
            report_out=gate_report.path,
            drift_report_path=drift_report.path,
            feature_metadata_path=feature_metadata.path,
            drift_html_path=drift_html.path,
            engine=engine,
            test_uri=test_data.uri,
        )
        record_gate(
            step=step,
            stopped=decision.decision != ModelGate.DEPLOY,
            records=RunRecords(
                validation_report=validation_report.path,
                drift_report=drift_report.path,
                gate_decision=gate_decision.path,
            ),
            summary_json_out=run_summary.path,
            markdown_out=summary.path,
            webhook_url=notify_webhook_url,
            links={"gate report": gate_report.uri, "drift report": drift_html.uri, "summary": summary.uri},
        )
    for name, value in decision.candidate["metrics"].items():
        metrics.log_metric(name, value)
    metrics.log_metric("overfit_gap", decision.candidate["overfit_gap"])
    if decision.champion and decision.champion["metrics"]:
        for name, value in decision.champion["metrics"].items():
            metrics.log_metric(f"champion_{name}", value)
    if decision.prediction_drift:
        metrics.log_metric("prediction_psi_vs_champion", decision.prediction_drift["psi"])
        metrics.log_metric("agreement_with_champion", decision.prediction_drift["agreement"])
    scores = decision.scores
    classification_metrics.log_confusion_matrix([str(label) for label in scores["labels"]], scores["confusion_matrix"])
    if scores["roc_curve"]:
        roc = scores["roc_curve"]
        classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    return decision.decision

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def check_drift(
    dataset: Input[Dataset],
    validation_report: Input[Artifact],
    target_column: str,
    registry_uri: str,
    model_name: str,
    drift: dict,
    engine: str,
    notify_webhook_url: str,
    retrain_ticket: str,
    drift_report: Output[Artifact],
    drift_html: Output[HTML],
    drift_metrics: Output[Metrics],
    run_summary: Output[Artifact],
    summary: Output[Markdown],
) -> str:
    """Drift gate: no-new-data trigger, the schema contract, then the batch against the champion's reference profile.

    Returns "train", "skip" (no new data) or "block" (schema broken, drifted under drift_action=block, or a
    segment's labels shifted under label_shift_action=block); a run stopped here writes its summary here and
    posts it to the webhook.
    """
    from gated_training.config import group_settings
    from gated_training.decisions import DriftGate
    from gated_training.kubeflow import recorded_step
    from gated_training.reports import RunRecords, record_gate
    from gated_training.steps.check_drift import check_drift

    with recorded_step(
        notify_webhook_url=notify_webhook_url,
        retrain_ticket=retrain_ticket,
        model_name=model_name,
        artifact_uri=run_summary.uri,
    ) as step:
        outcome = check_drift(
            dataset_path=dataset.path,
            validation_report_path=validation_report.path,
            target=target_column,
            registry_uri=registry_uri,
            model_name=model_name,
            policy=group_settings(group="drift", values=drift),
            report_out=drift_report.path,
            html_out=drift_html.path,
            engine=engine,
            dataset_uri=dataset.uri,
        )
        record_gate(
            step=step,
            stopped=outcome.decision != DriftGate.TRAIN,
            records=RunRecords(validation_report=validation_report.path, drift_report=drift_report.path),
            summary_json_out=run_summary.path,
            markdown_out=summary.path,
            webhook_url=notify_webhook_url,
            links={"drift report": drift_html.uri, "summary": summary.uri},
        )
    report = outcome.report
    if report is not None:
        drift_metrics.log_metric("drifted_share", report["drifted_share"])
        drift_metrics.log_metric("max_psi", report["max_psi"])  # over the features present (missing ones: no PSI)
        drift_metrics.log_metric("drifted_features", sum(f["drifted"] for f in report["features"]))
    drift_report.metadata.update({"decision": outcome.decision, "champion": outcome.champion or ""})
    return outcome.decision

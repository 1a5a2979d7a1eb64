from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def validate_data(
    data_uri: str,
    suite_uri: str,
    target_column: str,
    min_quality_score: float,
    suite_sha256: str,
    max_input_mb: float,
    engine: str,
    model_name: str,
    notify_webhook_url: str,
    retrain_ticket: str,
    dataset: Output[Dataset],
    validation_report: Output[Artifact],
    data_docs: Output[HTML],
    validation_metrics: Output[Metrics],
    run_summary: Output[Artifact],
    summary: Output[Markdown],
) -> str:
    """Data gate: validate the batch with its GX suite. Returns "passed" or "blocked"; a blocked run's
    summary (which critical expectations failed, with observed values) is written here and posted to the webhook."""
    from gated_training.decisions import DataGate
    from gated_training.kubeflow import recorded_step
    from gated_training.reports import RunRecords, check_webhook_url, record_gate
    from gated_training.steps.validate_data import validate_data

    with recorded_step(
        notify_webhook_url=notify_webhook_url,
        retrain_ticket=retrain_ticket,
        model_name=model_name,
        artifact_uri=run_summary.uri,
    ) as step:
        # The first step checks the webhook with the other run parameters: a run form's bad URL (a raw CR/LF,
        # a metadata address) fails the run here, naming the parameter, not a later notification.
        check_webhook_url(notify_webhook_url)
        outcome = validate_data(
            data_uri=data_uri,
            suite_uri=suite_uri,
            target=target_column,
            min_quality_score=min_quality_score,
            dataset_out=dataset.path,
            report_out=validation_report.path,
            data_docs_out=data_docs.path,
            pinned_suite_sha256=suite_sha256,
            max_input_mb=max_input_mb,
            engine=engine,
        )
        record_gate(
            step=step,
            stopped=not outcome.passed,
            records=RunRecords(validation_report=validation_report.path),
            summary_json_out=run_summary.path,
            markdown_out=summary.path,
            webhook_url=notify_webhook_url,
            links={"data docs": data_docs.uri, "summary": summary.uri},
        )
    dataset.metadata.update(
        {"format": "parquet", "sha256": outcome.data_sha256, "rows": outcome.row_count, "source_uri": data_uri}
    )
    validation_metrics.log_metric("quality_score", outcome.quality_score)
    validation_metrics.log_metric("rows", outcome.row_count)
    validation_metrics.log_metric("critical_failures", len(outcome.blocking_reasons))
    validation_metrics.log_metric("warnings", len(outcome.warnings))
    return DataGate.PASSED if outcome.passed else DataGate.BLOCKED

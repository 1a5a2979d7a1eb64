from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def report_drift_gate(
    validation_report: Input[Artifact],
    drift_report: Input[Artifact],
    drift_html: Input[HTML],
    kfp_run_id: str,
    notify_webhook_url: str,
    run_summary: Output[Artifact],
    summary: Output[Markdown],
):
    """Record a run stopped before training: skipped (no new data) or blocked by drift. Notifies the webhook."""
    from gated_training.step_records import recorded_step
    from gated_training.summary import record_and_notify

    with recorded_step("report-drift-gate"):
        record_and_notify(validation_report_path=validation_report.path, gate_decision_path=None, deployment_path=None, kfp_run_id=kfp_run_id, summary_json_out=run_summary.path, markdown_out=summary.path,
                       drift_report_path=drift_report.path, webhook_url=notify_webhook_url,
                       links={"drift report": drift_html.uri, "summary": summary.uri})

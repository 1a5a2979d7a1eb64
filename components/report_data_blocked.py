from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def report_data_blocked(
    validation_report: Input[Artifact],
    data_docs: Input[HTML],
    kfp_run_id: str,
    notify_webhook_url: str,
    run_summary: Output[Artifact],
    summary: Output[Markdown],
):
    """Record a run blocked by the data gate: which critical expectations failed, with observed values. Notifies
    the webhook."""
    from gated_training.step_records import recorded_step
    from gated_training.summary import record_and_notify

    with recorded_step("report-data-blocked"):
        record_and_notify(validation_report_path=validation_report.path, gate_decision_path=None, deployment_path=None, kfp_run_id=kfp_run_id, summary_json_out=run_summary.path, markdown_out=summary.path,
                       webhook_url=notify_webhook_url, links={"data docs": data_docs.uri, "summary": summary.uri})

from kfp import dsl

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def notify_failure(status: dsl.PipelineTaskFinalStatus, notify_webhook_url: str, kfp_run_id: str):
    """Exit handler: post to the webhook when the run failed. Blocked and skipped runs notify from their report step."""
    from gated_training.notify import notify_failed_run
    from gated_training.step_records import write_record

    sent = notify_failed_run(webhook_url=notify_webhook_url, state=status.state,
                             error_message=status.error_message or "", kfp_run_id=kfp_run_id,
                             job_name=status.pipeline_job_resource_name)
    write_record(step="notify-failure", kind="notification", record={"state": status.state, "notification": sent})

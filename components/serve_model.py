from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def serve_model(
    deployment: Input[Artifact],
    validation_report: Input[Artifact],
    gate_decision: Input[Artifact],
    drift_report: Input[Artifact],
    registry_uri: str,
    model_name: str,
    serving: dict,
    notify_webhook_url: str,
    retrain_ticket: str,
    serving_record: Output[Artifact],
    run_summary: Output[Artifact],
    summary: Output[Markdown],
):
    """Serve the new champion with KServe (a canary at canary_traffic_percent), wait for Ready; a canary that never
    becomes Ready gets no traffic and the champion goes back. Writes the run's summary."""
    import os

    from gated_training.config import group_settings
    from gated_training.kubeflow import recorded_step
    from gated_training.reports import RunRecords, record_and_notify
    from gated_training.steps.serve_model import secret_reference, serve_model

    with recorded_step(
        notify_webhook_url=notify_webhook_url,
        retrain_ticket=retrain_ticket,
        model_name=model_name,
        artifact_uri=run_summary.uri,
    ) as step:
        outcome = serve_model(
            deployment_path=deployment.path,
            registry_uri=registry_uri,
            model_name=model_name,
            settings=group_settings(group="serving", values=serving),
            registry_key_secret=secret_reference(os.environ.get("GATED_TRAINING_SERVING_REGISTRY_KEY_SECRET", "")),
            gcs_key_secret=secret_reference(os.environ.get("GATED_TRAINING_SERVING_GCS_KEY_SECRET", "")),
            kube_api_url=os.environ.get("GATED_TRAINING_KUBE_API", ""),
            serving_out=serving_record.path,
        )
        record_and_notify(
            records=RunRecords(
                validation_report=validation_report.path,
                drift_report=drift_report.path,
                gate_decision=gate_decision.path,
                deployment=deployment.path,
                serving=serving_record.path,
            ),
            kfp_run_id=step.run_id,
            summary_json_out=run_summary.path,
            markdown_out=summary.path,
            webhook_url=notify_webhook_url,
            retrain_ticket=step.retrain_ticket,
        )
    serving_record.metadata.update(
        {
            "service": outcome.service,
            "namespace": outcome.namespace,
            "served": outcome.served,
            "mode": outcome.mode,
            "canary_percent": outcome.canary_percent,
        }
    )
